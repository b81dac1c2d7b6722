"""DuckDB fast path for :func:`~exchange.transfer.pipeline.run_transform`, exact or not at all.

:func:`try_columnar` either produces what the Python pipeline would (same output bytes, same
rejects file, same counts) or declines and hands back chunks that replay the source, so the caller
runs the Python path unchanged. Nothing is written at ``out_path`` / ``rejects_path`` unless the
fast path succeeds; its work files live in a temp directory beside ``out_path``.

Eligibility (checked in this order; any miss declines):

1. ``ENABLED`` (module flag) and every rule a known transform; no ``normalize_phone`` together with
   a ``default_country`` (national numbers would all need the Python mapper); output column names
   that need no CSV quoting.
2. While spooling the source to a temp file (the raw chunks, kept for a replay; the inflated bytes
   too when gzip), a C-speed scan of every inflated piece finds: no ``"`` (so a physical line is a
   record and commas split it), no blank line, ``\\r`` only as part of ``\\r\\n`` and either every
   line ends in ``\\r\\n`` or none does, none of the ASCII whitespace controls ``\\x0b \\x0c
   \\x1c-\\x1f`` nor ``\\x01`` (the single-column reader's delimiter). csvio's byte checks run on the
   same pieces (gzip errors, decompressed bound, NUL bytes, line length, UTF-8): any fatal problem,
   and any invalid UTF-8, declines, and the Python path then reports it itself.
3. The header passes csvio's header checks and the mapping compiles against it.
4. DuckDB ran without error, saw as many records as the scan counted lines, and no line is longer
   than ``max_field_chars`` bytes (csv's field limit rejects would otherwise need emulating).

The per-value semantics are in :mod:`exchange.transfer.columnar_sql`: SQL handles the accepted
plain values, the Python mapper itself (as a UDF) every other row with the right field count.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

import duckdb

from exchange.errors import ExchangeError
from exchange.transfer.columnar_sql import SqlStats, compile_rules, iter_rejects, run_sql
from exchange.transfer.csvio import CsvLimits, _ByteSource, format_row, open_csv
from exchange.transfer.mapping import TRANSFORMS, MappingRule, RowMapper, compile_mapping
from exchange.transfer.pipeline import TransformCancelled, TransformResult
from exchange.transfer.rejects import RejectsWriter

__all__ = ["ENABLED", "try_columnar"]

_log = logging.getLogger(__name__)

ENABLED = True  # tests and benchmarks switch the fast path off here
MEMORY_LIMIT = "160MB"  # DuckDB's share of the 300 MB process budget; it spills past it
# Past this size the mapped-rows table spills to disk and the fast path became slower than the
# streaming Python path (bench: 10M rows, 116 s vs ~90 s), so larger files take the Python path.
MAX_SPOOL_BYTES = 256 * 1024 * 1024
_READ = 1 << 20
_BAD_BYTES = re.compile(rb'["\x01\x0b\x0c\x1c-\x1f]')
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
_BOM = b"\xef\xbb\xbf"


class _Decline(Exception):
    """The fast path cannot guarantee the Python path's result for this input (the reason why)."""


def try_columnar(
    chunks: Iterable[bytes],
    *,
    gzip: bool,
    rules: list,
    identifier_types: set[str],
    out_path: str,
    rejects_path: str,
    limits: CsvLimits | None = None,
    default_country: str | None = None,
    cancel_check: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[TransformResult | None, Iterable[bytes]]:
    """(result, chunks): the result when the fast path applied, else None and the chunks to read."""
    if not ENABLED or not _rules_eligible(rules, default_country):
        return None, chunks
    limits = limits or CsvLimits()
    workdir = tempfile.mkdtemp(prefix=".columnar-", dir=os.path.dirname(os.path.abspath(out_path)))
    raw = open(os.path.join(workdir, "source.raw"), "w+b")  # noqa: SIM115 - handed to the replay
    source = iter(chunks)
    try:
        try:
            scan = _spool(source, raw, gzip, limits, workdir, cancel_check)
            if raw.seek(0, os.SEEK_END) > MAX_SPOOL_BYTES:
                raise _Decline(f"over {MAX_SPOOL_BYTES >> 20} MiB: the streaming path is faster")
            result = _transform(scan, rules, identifier_types, default_country, limits, workdir,
                                out_path, rejects_path, cancel_check, progress)
        except _Decline as why:
            _log.debug("columnar fast path declined: %s", why)
            return None, _replay(raw, source)
        except TransformCancelled:
            raw.close()
            raise
        raw.close()
        return result, ()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # an open replay file survives its unlinking


def _rules_eligible(rules: list, default_country: str | None) -> bool:
    try:
        parsed = [MappingRule.coerce(r) for r in rules]
    except (AttributeError, KeyError, TypeError):
        return False
    for rule in parsed:
        if not isinstance(rule.target, str) or _NEEDS_QUOTES.search(rule.target):
            return False
        if not all(isinstance(t, str) and t in TRANSFORMS for t in rule.transform):
            return False
        if default_country is not None and "normalize_phone" in rule.transform:
            return False
    return all(isinstance(r, (Mapping, MappingRule)) for r in rules)


def _replay(raw: io.BufferedRandom, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks already spooled, then whatever the source has not yielded yet."""
    with raw:
        raw.flush()
        raw.seek(0)
        while block := raw.read(_READ):
            yield block
    yield from rest


class _Scan:
    """What the spool learnt about the inflated bytes; :meth:`feed` declines on what SQL cannot do."""

    def __init__(self, data_path: str):
        self.data_path = data_path
        self.head = b""  # the bytes up to the first newline (the header line)
        self.newlines = 0
        self.crlf = 0
        self.size = 0
        self.records = 0
        self.tail = b"\n"  # the last two bytes seen; the start of the file counts as a line start

    def feed(self, piece: bytes) -> None:
        if _BAD_BYTES.search(piece):
            raise _Decline("quote, \\x01 or an ASCII whitespace control in the data")
        buf = self.tail + piece
        if b"\n\n" in buf or b"\n\r\n" in buf:
            raise _Decline("a blank line")
        if buf.count(b"\r") - buf.endswith(b"\r") != buf.count(b"\r\n"):
            raise _Decline("a carriage return that does not end a line")
        if not self.newlines:
            self.head += piece[: piece.find(b"\n") + 1 or len(piece)]
        self.newlines += piece.count(b"\n")
        self.crlf += (self.tail[-1:] + piece).count(b"\r\n")
        self.size += len(piece)
        self.tail = buf[-2:]


def _spool(source: Iterator[bytes], raw: io.BufferedRandom, gzip: bool, limits: CsvLimits,
           workdir: str, cancel_check: Callable[[], bool] | None) -> _Scan:
    def tee() -> Iterator[bytes]:
        for n, chunk in enumerate(source):
            if n % 64 == 0:
                _check_cancel(cancel_check)
            raw.write(chunk)
            yield chunk

    inflated_path = os.path.join(workdir, "source.csv") if gzip else raw.name
    scan = _Scan(inflated_path)
    checks = _ByteSource(tee(), gzip=gzip, limits=limits)
    with open(inflated_path, "wb") if gzip else contextlib.nullcontext() as inflated:
        try:
            while (piece := checks._next_piece()) is not None:
                if piece:
                    checks._inspect(piece)
                    scan.feed(piece)
                    if inflated is not None:
                        inflated.write(piece)
        except TransformCancelled:
            raise
        except ExchangeError as exc:
            raise _Decline(f"the Python path reports: {exc}") from None
    checks._finish_utf8()
    raw.flush()
    if checks.saw_bad_utf8 or scan.tail.endswith(b"\r"):
        raise _Decline("invalid UTF-8, or a carriage return at the end")
    lines = scan.newlines + (not scan.tail.endswith(b"\n"))
    if scan.crlf and scan.crlf != scan.newlines:
        raise _Decline("mixed line endings")
    scan.records = max(lines - 1, 0)
    return scan


def _transform(scan: _Scan, rules: list, identifier_types: set[str], default_country: str | None,
               limits: CsvLimits, workdir: str, out_path: str, rejects_path: str,
               cancel_check: Callable[[], bool] | None,
               progress: Callable[[int], None] | None) -> TransformResult:
    try:
        header = open_csv([scan.head], limits=limits).header
        mapper = compile_mapping(rules, header, identifier_types=identifier_types,
                                 default_country=default_country)
    except ExchangeError as exc:
        raise _Decline(f"the Python path reports: {exc}") from None
    if not scan.head.rstrip(b"\r\n").removeprefix(_BOM) or scan.size == 0:
        raise _Decline("no header line")
    _check_cancel(cancel_check)
    parsed = [MappingRule.coerce(r) for r in rules]
    sql = compile_rules(parsed, header, identifier_types)
    staging, rejects_tmp = os.path.join(workdir, "output.csv"), os.path.join(workdir, "rejects.csv")
    con = duckdb.connect(os.path.join(workdir, "work.duckdb"), config={"threads": 2, "memory_limit": MEMORY_LIMIT,
                                 "temp_directory": os.path.join(workdir, "duck"),
                                 "preserve_insertion_order": True})
    try:
        con.execute("SET enable_progress_bar = false")
        header_line = format_row(mapper.columns).rstrip("\n")
        stats = _run_cancellable(con, lambda: run_sql(con, scan.data_path, workdir, staging,
                                                      header_line, len(header), sql, mapper), cancel_check)
        if stats.received != scan.records or stats.longest_line > limits.max_field_chars:
            raise _Decline("a record count mismatch or a line longer than the field limit")
        _check_cancel(cancel_check)
        if progress is not None:
            progress(stats.received)  # every record has been read (and mapped)
        with open(rejects_tmp, "wb") as f:
            rejects = RejectsWriter(f, header)
            for ord_, line, reason in iter_rejects(con):
                rejects.write(1 + ord_, line.split(","), reason)
            rejects.flush()
    except duckdb.Error as exc:
        raise _Decline(f"DuckDB {type(exc).__name__}") from None
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("DROP TABLE IF EXISTS m")  # else closing checkpoints it into the file
            con.execute("DROP TABLE IF EXISTS cand")
        con.close()
    with open(staging, "rb") as f:
        out_sha = hashlib.file_digest(f, "sha256").hexdigest()
    counts = _counts(stats, mapper)
    os.replace(rejects_tmp, rejects_path)
    os.replace(staging, out_path)
    if progress is not None:
        progress(stats.received)
    return TransformResult(
        columns=list(mapper.columns), counts=counts, rows_out=stats.valid, out_sha256=out_sha,
        out_bytes=os.path.getsize(out_path), rejects_bytes=rejects.bytes_written,
        source_columns=list(header),
    )


def _counts(stats: SqlStats, mapper: RowMapper) -> dict[str, int]:
    return {"received": stats.received, "rejected": stats.rejected, "hashed": stats.hashed,
            "passed_through": stats.passed_through, "duplicates": stats.accepted - stats.valid,
            "valid": stats.valid}


def _check_cancel(cancel_check: Callable[[], bool] | None) -> None:
    if cancel_check is not None and cancel_check():
        raise TransformCancelled("the job was cancelled during the transform")


def _run_cancellable(con: duckdb.DuckDBPyConnection, work: Callable[[], SqlStats],
                     cancel_check: Callable[[], bool] | None) -> SqlStats:
    """Run the SQL in a worker thread; this thread polls ``cancel_check`` and interrupts DuckDB."""
    if cancel_check is None:
        return work()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["stats"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="columnar-sql", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if worker.is_alive() and cancel_check():
            con.interrupt()
            worker.join()
            raise TransformCancelled("the job was cancelled during the transform")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["stats"]  # type: ignore[return-value]
