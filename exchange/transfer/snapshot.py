"""Snapshots of what a destination holds, and the deltas computed against them.

A snapshot is a Parquet file with one row per identifier key the destination holds after the last
successful job of a share: the key columns (text, missing values stored as ``''``) plus
``__aex_digest``, a 64-bit digest of the whole delivered row, so a member whose attributes changed
can be re-sent. Rows are sorted by key, which makes the file (and its SHA-256) deterministic. Key-value
metadata records the key columns, the CSV header the digests were computed over and the digest
algorithm; when either of the last two differs from the current job, stored digests are treated as
unknown, so matching members are re-sent once instead of being silently skipped.

A NULL digest means "the destination may or may not hold this member in this form": it is how
:func:`snapshot_after_failure` records the keys a failed job may have touched, so the next delta
re-sends them (as adds when still wanted, as removes when not).

All work runs in DuckDB with a bounded memory limit that spills to a temporary directory beside the
output, so 10M-row files diff in constant memory. Keys are joined on two independent 64-bit hashes
(a 128-bit fingerprint) rather than on the strings: the hash table stays narrow and never spills.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from exchange.errors import CsvDataError, ExchangeError

if TYPE_CHECKING:  # imported where used: a job process that never diffs does not load DuckDB (~0.5 s)
    import duckdb

MEMORY_LIMIT = "300MB"
THREADS = 2
DIGEST_COLUMN = "__aex_digest"
# DuckDB's hash() is fast (md5 is ~30x slower at 10M rows) but not promised stable across releases;
# tagging the algorithm with the version turns an upgrade into one full re-send, never a wrong diff.
@cache
def digest_algorithm() -> str:
    """The row digest's name, versioned by the DuckDB release that computes it."""
    import duckdb

    return f"duckdb-hash/{duckdb.__version__}"
SNAPSHOT_FORMAT = "1"

SnapshotMode = Literal["add", "remove", "replace", "sync"]


class SnapshotMismatch(ExchangeError):
    """The stored snapshot was built for other identifier columns than the share now uses."""

    status = 409
    title = "Snapshot does not match the share"
    type_slug = "snapshot-mismatch"


@dataclass(frozen=True)
class SnapshotInfo:
    rows: int
    sha256: str
    path: Path


@dataclass(frozen=True)
class DeltaResult:
    added: int
    removed: int
    changed: int
    unchanged: int


@dataclass(frozen=True)
class _Meta:
    keys: list[str]
    columns: list[str]
    digest: str


# ---------------------------------------------------------------- SQL building blocks


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _coalesced(columns: Sequence[str], prefix: str = "") -> list[str]:
    return [f"coalesce({prefix}{_ident(c)}, '')" for c in columns]


def _h1(keys: Sequence[str], prefix: str = "") -> str:
    return f"hash({', '.join(_coalesced(keys, prefix))})"


def _h2(keys: Sequence[str], prefix: str = "") -> str:
    # hash() of several arguments combines per-value hashes, so hash(k, 'salt') would be a function
    # of hash(k); hashing a different byte string gives a second, independent 64 bits.
    parts = ", chr(31), ".join(_coalesced(keys, prefix))
    return f"hash(concat({parts}, chr(30)))"


def _digest(columns: Sequence[str]) -> str:
    return f"hash({', '.join(_coalesced(columns))})"


def _key_select(keys: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{expr} AS {_ident(k)}" for expr, k in zip(_coalesced(keys, prefix), keys))


def _order_by(keys: Sequence[str]) -> str:
    # Plain columns, not coalesce(): DuckDB sorts 10M rows by an expression 3x slower. NULLS FIRST
    # orders a missing value like the '' it is stored as in snapshots.
    return ", ".join(f"{_ident(k)} NULLS FIRST" for k in keys)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def read_header(path: Path) -> list[str]:
    """The header row of an RFC 4180 CSV file (gzip and a UTF-8 BOM tolerated)."""
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except (UnicodeDecodeError, OSError, csv.Error) as exc:
        raise CsvDataError(f"{path.name}: the header row is not readable UTF-8 CSV") from exc
    if not header:
        raise CsvDataError(f"{path.name} has no header row")
    if len(set(header)) != len(header):
        raise CsvDataError(f"{path.name}: the header names a column twice")
    return header


def _require_keys(header: Sequence[str], key_columns: Sequence[str], path: Path) -> None:
    if not key_columns:
        raise ValueError("key_columns must name at least one identifier column")
    missing = [k for k in key_columns if k not in header]
    if missing:
        raise CsvDataError(f"{path.name} lacks the identifier column(s) {', '.join(missing)}")


def _csv_source(path: Path, header: Sequence[str]) -> str:
    # Every dialect option is explicit and sniffing is off: values stay text exactly as written,
    # a quoted "" stays an empty string, and quoted commas, quotes and newlines are data.
    columns = ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in header)
    compression = "gzip" if _is_gzip(path) else "none"
    return (
        f"read_csv({_lit(str(path))}, header=true, auto_detect=false, columns={{{columns}}}, "
        f"delim=',', quote='\"', escape='\"', allow_quoted_nulls=false, strict_mode=true, "
        f"null_padding=false, compression={_lit(compression)})"
    )


def _parquet(path: Path, row_numbers: bool = False) -> str:
    return f"read_parquet({_lit(str(path))}{', file_row_number=true' if row_numbers else ''})"


@contextmanager
def _duckdb(work_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory DuckDB, bounded, spilling beside the output; always closed and cleaned."""
    work_dir.mkdir(parents=True, exist_ok=True)
    spill = work_dir / f".duckdb-tmp-{uuid.uuid4().hex}"
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit={_lit(MEMORY_LIMIT)}")
        con.execute(f"SET threads={THREADS}")
        con.execute(f"SET temp_directory={_lit(str(spill))}")
        con.execute("SET enable_progress_bar=false")
        # Outputs carry an explicit ORDER BY; elsewhere order is irrelevant and keeping it costs memory.
        con.execute("SET preserve_insertion_order=false")
        # read_csv without sniffing estimates ~40 rows, so DuckDB would build its hash table on the
        # 10M-row CSV side; every join here is written with the side to build on the right.
        con.execute("SET disabled_optimizers='build_side_probe_side'")
        yield con
    except duckdb.InvalidInputException as exc:
        raise _csv_error(exc) from exc
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _csv_error(exc: Exception) -> CsvDataError:
    # DuckDB quotes the offending line; user-facing messages must not carry row data.
    match = re.search(r"[Ll]ine:? (\d+)", str(exc))
    where = f" near line {match.group(1)}" if match else ""
    return CsvDataError(f"the file is not valid RFC 4180 CSV{where}")


def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- snapshot files


def _write_snapshot(con: duckdb.DuckDBPyConnection, select: str, meta: _Meta, out_path: Path) -> SnapshotInfo:
    """Write ``select`` (key columns + digest) sorted by key; atomically, so a crash leaves the old file."""
    kv = {
        "aex_format": SNAPSHOT_FORMAT,
        "aex_keys": json.dumps(meta.keys),
        "aex_columns": json.dumps(meta.columns),
        "aex_digest": meta.digest,
    }
    kv_sql = ", ".join(f"{k}: {_lit(v)}" for k, v in kv.items())
    tmp = _tmp_beside(out_path)
    try:
        con.execute(
            f"COPY (SELECT * FROM ({select}) ORDER BY {_order_by(meta.keys)}, {_ident(DIGEST_COLUMN)}) "
            f"TO {_lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
            f"KV_METADATA {{{kv_sql}}})"
        )
        rows = con.execute(f"SELECT num_rows FROM parquet_file_metadata({_lit(str(tmp))})").fetchone()[0]
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return SnapshotInfo(rows=int(rows), sha256=_sha256(out_path), path=out_path)


def _read_meta(con: duckdb.DuckDBPyConnection, snapshot: Path, key_columns: Sequence[str]) -> _Meta:
    rows = con.execute(f"SELECT key, value FROM parquet_kv_metadata({_lit(str(snapshot))})").fetchall()
    kv = {bytes(k).decode(): bytes(v).decode() for k, v in rows}
    if kv.get("aex_format") != SNAPSHOT_FORMAT:
        raise SnapshotMismatch(f"{snapshot.name} is not an exchange snapshot")
    meta = _Meta(json.loads(kv["aex_keys"]), json.loads(kv["aex_columns"]), kv["aex_digest"])
    if meta.keys != list(key_columns):
        raise SnapshotMismatch(
            f"the snapshot holds keys ({', '.join(meta.keys)}), the share uses ({', '.join(key_columns)})"
        )
    return meta


def _digests_comparable(meta: _Meta, header: Sequence[str]) -> bool:
    return meta.digest == digest_algorithm() and meta.columns == list(header)


def _old_digest(meta: _Meta, header: Sequence[str], prefix: str = "") -> str:
    """The stored digest when comparable with digests over ``header``, else NULL (= unknown)."""
    return prefix + _ident(DIGEST_COLUMN) if _digests_comparable(meta, header) else "NULL::UBIGINT"


def _empty_select(keys: Sequence[str]) -> str:
    cols = ", ".join(f"''::VARCHAR AS {_ident(k)}" for k in keys)
    return f"SELECT {cols}, NULL::UBIGINT AS {_ident(DIGEST_COLUMN)} LIMIT 0"


def _rows_select(path: Path, header: Sequence[str], keys: Sequence[str]) -> str:
    return (
        f"SELECT {_key_select(keys)}, {_digest(header)} AS {_ident(DIGEST_COLUMN)} "
        f"FROM {_csv_source(path, header)}"
    )


def build_snapshot(rows_csv: Path, key_columns: list[str], out_path: Path) -> SnapshotInfo:
    """Snapshot of the keys (and row digests) of ``rows_csv``: the set a destination now holds."""
    header = read_header(rows_csv)
    _require_keys(header, key_columns, rows_csv)
    with _duckdb(out_path.parent) as con:
        meta = _Meta(list(key_columns), header, digest_algorithm())
        return _write_snapshot(con, _rows_select(rows_csv, header, key_columns), meta, out_path)


# ---------------------------------------------------------------- deltas


def _copy_csv(con: duckdb.DuckDBPyConnection, select: str, out_path: Path) -> int:
    """Write ``select`` as RFC 4180 CSV with a header, atomically; returns the row count."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(out_path)
    try:
        count = con.execute(
            f"COPY ({select}) TO {_lit(str(tmp))} (FORMAT csv, HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"')"
        ).fetchone()[0]
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return int(count)


def _removes_select(keys: Sequence[str], source: str, where: str) -> str:
    # Missing key parts are stored as '' but written as empty unquoted fields, like the input had them.
    cols = ", ".join(f"nullif({_ident(k)}, '') AS {_ident(k)}" for k in keys)
    return f"SELECT {cols} FROM {source} WHERE {where} ORDER BY {_order_by(keys)}"


def compute_delta(
    new_rows_csv: Path,
    old_snapshot: Path | None,
    key_columns: list[str],
    adds_out: Path,
    removes_out: Path,
    *,
    include_changed: bool = True,
) -> DeltaResult:
    """Write the rows to add and the keys to remove to turn ``old_snapshot`` into ``new_rows_csv``.

    ``adds_out`` has the input's header and full rows (members whose row changed included when
    ``include_changed``); ``removes_out`` has only ``key_columns``. Both are sorted by key. Without an
    old snapshot every row is an add. Members whose digest the snapshot does not know (see
    :func:`snapshot_after_failure`) are always re-sent and counted as changed.
    """
    header = read_header(new_rows_csv)
    _require_keys(header, key_columns, new_rows_csv)
    source = _csv_source(new_rows_csv, header)
    keys = list(key_columns)
    with _duckdb(adds_out.parent) as con:
        if old_snapshot is None:
            added = _copy_csv(con, f"SELECT * FROM {source} ORDER BY {_order_by(keys)}", adds_out)
            key_cols = ", ".join(_ident(k) for k in keys)
            _copy_csv(con, f"SELECT {key_cols} FROM {source} LIMIT 0", removes_out)
            return DeltaResult(added=added, removed=0, changed=0, unchanged=0)

        meta = _read_meta(con, old_snapshot, keys)
        # Pass 1 joins narrow rows only (two key hashes + digest per side): carrying full rows through
        # the join made it spill and measured twice as slow. The changes (usually a few percent) land
        # in a small table; the old side is known by its row number. Op 'u' marks a member whose
        # digest is unknown (an earlier job failed part-way): it is re-sent even if changes are not.
        differs = "n.d IS DISTINCT FROM o.d" if _digests_comparable(meta, header) else "true"
        con.execute(
            f"""CREATE TEMP TABLE changes AS
            SELECT n.h1, n.h2, o.rn,
                   CASE WHEN o.rn IS NULL THEN 'a' WHEN n.h1 IS NULL THEN 'r'
                        WHEN o.d IS NULL THEN 'u' ELSE 'c' END AS op
            FROM (SELECT {_h1(keys)} AS h1, {_h2(keys)} AS h2, {_digest(header)} AS d FROM {source}) n
            FULL JOIN (SELECT {_h1(keys)} AS h1, {_h2(keys)} AS h2, {_ident(DIGEST_COLUMN)} AS d,
                              file_row_number AS rn FROM {_parquet(old_snapshot, row_numbers=True)}) o
              ON n.h1 = o.h1 AND n.h2 = o.h2
            WHERE o.rn IS NULL OR n.h1 IS NULL OR o.d IS NULL OR {differs}"""
        )
        counts = dict(con.execute("SELECT op, count(*) FROM changes GROUP BY op").fetchall())
        old_rows = con.execute(
            f"SELECT num_rows FROM parquet_file_metadata({_lit(str(old_snapshot))})"
        ).fetchone()[0]
        wanted = "('a', 'u', 'c')" if include_changed else "('a', 'u')"
        # Pass 2 re-reads the CSV and keeps the rows whose key hashes are among the changes; the
        # small change set is the build side.
        _copy_csv(
            con,
            f"""SELECT s.* FROM {source} s
            SEMI JOIN (SELECT h1, h2 FROM changes WHERE op IN {wanted}) c
              ON {_h1(keys, 's.')} = c.h1 AND {_h2(keys, 's.')} = c.h2
            ORDER BY {_order_by(keys)}""",
            adds_out,
        )
        _copy_csv(
            con,
            _removes_select(
                keys,
                _parquet(old_snapshot, row_numbers=True),
                "file_row_number IN (SELECT rn FROM changes WHERE op = 'r')",
            ),
            removes_out,
        )
    added, removed = counts.get("a", 0), counts.get("r", 0)
    changed = counts.get("c", 0) + counts.get("u", 0)
    return DeltaResult(
        added=added, removed=removed, changed=changed, unchanged=int(old_rows) - removed - changed
    )


# ---------------------------------------------------------------- advancing snapshots


def _keys_select(path: Path, keys: Sequence[str]) -> str:
    """h1/h2 of the keys of any CSV holding at least ``keys`` (a removes file, a full rows file)."""
    header = read_header(path)
    _require_keys(header, keys, path)
    return f"SELECT {_key_select(keys)}, {_h1(keys)} AS h1, {_h2(keys)} AS h2 FROM {_csv_source(path, header)}"


def _old_rows(snapshot: Path, keys: Sequence[str], digest: str, unless_in: str) -> str:
    """Rows of ``snapshot`` whose key is not in the (h1, h2) relation ``unless_in``."""
    return (
        f"SELECT {_key_select(keys, 'o.')}, {digest} AS {_ident(DIGEST_COLUMN)} "
        f"FROM {_parquet(snapshot)} o ANTI JOIN ({unless_in}) x "
        f"ON {_h1(keys, 'o.')} = x.h1 AND {_h2(keys, 'o.')} = x.h2"
    )


def next_snapshot(
    mode: SnapshotMode,
    old_snapshot: Path | None,
    delivered_rows_csv: Path,
    key_columns: list[str],
    out_path: Path,
) -> SnapshotInfo:
    """The snapshot after a *successful* job that delivered ``delivered_rows_csv``.

    ``add``: old ∪ delivered (delivered rows' digests win). ``remove``: old − delivered (the file
    needs only the key columns). ``replace``/``sync``: exactly the delivered set — for a delta job
    pass the job's full output, not its adds file, since the destination now holds all of it.
    """
    keys = list(key_columns)
    if mode in ("replace", "sync") or (mode == "add" and old_snapshot is None):
        return build_snapshot(delivered_rows_csv, keys, out_path)
    if mode not in ("add", "remove"):
        raise ValueError(f"unknown snapshot mode {mode!r}")
    with _duckdb(out_path.parent) as con:
        delivered = _keys_select(delivered_rows_csv, keys)
        if old_snapshot is None:  # removing from nothing leaves nothing
            return _write_snapshot(con, _empty_select(keys), _Meta(keys, keys, digest_algorithm()), out_path)
        meta = _read_meta(con, old_snapshot, keys)
        if mode == "remove":
            select = _old_rows(old_snapshot, keys, _ident(DIGEST_COLUMN), delivered)
            return _write_snapshot(con, select, meta, out_path)
        header = read_header(delivered_rows_csv)
        # Old digests stay meaningful only if they were computed over the same header.
        old_digest = _old_digest(meta, header, prefix="o.")
        select = (
            f"{_rows_select(delivered_rows_csv, header, keys)} UNION ALL "
            f"{_old_rows(old_snapshot, keys, old_digest, delivered)}"
        )
        return _write_snapshot(con, select, _Meta(keys, header, digest_algorithm()), out_path)


def snapshot_after_failure(
    old_snapshot: Path | None,
    attempted_csvs: Sequence[Path],
    key_columns: list[str],
    out_path: Path,
) -> SnapshotInfo:
    """The snapshot after a job that failed part-way through delivering ``attempted_csvs``.

    The failed job's version is *not* taken as delivered: the baseline stays the last success. But
    the destination may already hold some of the adds and lack some of the removes, so every key the
    job tried to send is recorded with an unknown digest. The next delta therefore re-sends each
    such key — as an add if the new version has it, as a remove if not — and nothing stays stale.
    """
    keys = list(key_columns)
    with _duckdb(out_path.parent) as con:
        meta = _read_meta(con, old_snapshot, keys) if old_snapshot else _Meta(keys, keys, digest_algorithm())
        old = _parquet(old_snapshot) if old_snapshot else f"({_empty_select(keys)})"
        if not attempted_csvs:
            return _write_snapshot(con, f"SELECT * FROM {old}", meta, out_path)
        touched = " UNION ".join(_keys_select(p, keys) for p in attempted_csvs)
        key_cols = ", ".join(_ident(k) for k in keys)
        select = f"SELECT DISTINCT {key_cols}, NULL::UBIGINT AS {_ident(DIGEST_COLUMN)} FROM ({touched})"
        if old_snapshot is not None:
            select += f" UNION ALL {_old_rows(old_snapshot, keys, f'o.{_ident(DIGEST_COLUMN)}', touched)}"
        return _write_snapshot(con, select, meta, out_path)
