"""Snapshots and deltas on small files: exact adds, removes and changes; awkward CSV survives."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from exchange.errors import CsvDataError
from exchange.transfer.snapshot import (
    DIGEST_COLUMN,
    DeltaResult,
    SnapshotMismatch,
    build_snapshot,
    compute_delta,
    next_snapshot,
    snapshot_after_failure,
)

from .csvfiles import read_csv, write_csv

HEADER = ["email", "segment", "note"]
V1 = [
    ["a@x.com", "gold", "likes, commas"],
    ["b@x.com", "silver", 'says "hi"'],
    ["c@x.com", "gold", "line one\nline two"],
    ["d@x.com", "bronze", ""],
]


def snapshot_rows(path: Path) -> list[tuple]:
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()


def delta(tmp_path: Path, new: Path, old: Path | None, **kwargs) -> tuple[DeltaResult, list, list]:
    adds, removes = tmp_path / "adds.csv", tmp_path / "removes.csv"
    result = compute_delta(new, old, ["email"], adds, removes, **kwargs)
    return result, read_csv(adds), read_csv(removes)


def test_snapshot_holds_sorted_keys_and_digests(tmp_path: Path) -> None:
    shuffled = write_csv(tmp_path / "v1.csv", HEADER, [V1[2], V1[0], V1[3], V1[1]])
    info = build_snapshot(shuffled, ["email"], tmp_path / "s1.parquet")
    assert info.rows == 4
    rows = snapshot_rows(info.path)
    assert [r[0] for r in rows] == ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    assert all(isinstance(r[1], int) for r in rows)
    columns = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{info.path}')").fetchall()
    assert [c[0] for c in columns] == ["email", DIGEST_COLUMN]
    # Same members in another order: byte-identical snapshot.
    again = build_snapshot(write_csv(tmp_path / "v1b.csv", HEADER, V1), ["email"], tmp_path / "s1b.parquet")
    assert again.sha256 == info.sha256


def test_exact_adds_removes_and_changes(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1), ["email"], tmp_path / "s1.parquet").path
    v2 = [
        ["a@x.com", "gold", "likes, commas"],  # unchanged
        ["c@x.com", "platinum", "line one\nline two"],  # changed
        ["d@x.com", "bronze", ""],  # unchanged
        ["e@x.com", "new", 'quote " and, comma\r\nand CRLF'],  # added
    ]
    result, (add_header, adds), (rm_header, removes) = delta(tmp_path, write_csv(tmp_path / "v2.csv", HEADER, v2), old)
    assert result == DeltaResult(added=1, removed=1, changed=1, unchanged=2)
    assert add_header == HEADER
    assert adds == [v2[1], v2[3]]  # sorted by key, values byte for byte
    assert (rm_header, removes) == (["email"], [["b@x.com"]])

    result, (_, adds), _ = delta(tmp_path, tmp_path / "v2.csv", old, include_changed=False)
    assert result.changed == 1 and adds == [v2[3]]


def test_without_a_snapshot_everything_is_an_add(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "v.csv", HEADER, V1[::-1])
    result, (header, adds), (rm_header, removes) = delta(tmp_path, source, None)
    assert result == DeltaResult(added=4, removed=0, changed=0, unchanged=0)
    assert (header, adds) == (HEADER, V1)
    assert (rm_header, removes) == (["email"], [])


def test_empty_new_version_removes_everything(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1), ["email"], tmp_path / "s1.parquet").path
    result, (_, adds), (_, removes) = delta(tmp_path, write_csv(tmp_path / "v0.csv", HEADER, []), old)
    assert result == DeltaResult(added=0, removed=4, changed=0, unchanged=0)
    assert adds == [] and removes == [[r[0]] for r in V1]


def test_composite_keys_with_a_missing_part(tmp_path: Path) -> None:
    header = ["email_sha256", "phone_sha256", "tier"]
    v1 = [["e1", "", "a"], ["", "p2", "b"], ["e3", "p3", "c"]]
    v2 = [["e1", "", "a"], ["e3", "p3", "z"], ["e4", "", "d"]]
    old = build_snapshot(write_csv(tmp_path / "v1.csv", header, v1), header[:2], tmp_path / "s.parquet").path
    adds, removes = tmp_path / "a.csv", tmp_path / "r.csv"
    result = compute_delta(write_csv(tmp_path / "v2.csv", header, v2), old, header[:2], adds, removes)
    assert result == DeltaResult(added=1, removed=1, changed=1, unchanged=1)
    assert read_csv(adds) == (header, [["e3", "p3", "z"], ["e4", "", "d"]])
    assert read_csv(removes) == (header[:2], [["", "p2"]])


def test_gzip_and_bom_inputs(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "v1.csv", HEADER, V1)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    packed = tmp_path / "v1.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    reference = build_snapshot(plain, ["email"], tmp_path / "p.parquet")
    assert build_snapshot(bom, ["email"], tmp_path / "b.parquet").sha256 == reference.sha256
    assert build_snapshot(packed, ["email"], tmp_path / "g.parquet").sha256 == reference.sha256


def test_a_header_change_resends_every_kept_member(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1), ["email"], tmp_path / "s1.parquet").path
    rows = [r[:2] for r in V1]
    result, (header, adds), _ = delta(tmp_path, write_csv(tmp_path / "v2.csv", HEADER[:2], rows), old)
    assert result == DeltaResult(added=0, removed=0, changed=4, unchanged=0)
    assert (header, adds) == (HEADER[:2], rows)


def test_snapshot_for_other_key_columns_is_refused(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1), ["email"], tmp_path / "s1.parquet").path
    with pytest.raises(SnapshotMismatch):
        compute_delta(tmp_path / "v1.csv", old, ["segment"], tmp_path / "a.csv", tmp_path / "r.csv")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "no header"), (b"segment,note\nx,y\n", "lacks the identifier"), (b"email,email\nx,y\n", "twice"),
     (b"email,segment\na@x,1,extra\n", "not valid RFC 4180")],
)
def test_unusable_input_is_a_csv_data_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CsvDataError, match=message):
        build_snapshot(path, ["email"], tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()


def test_next_snapshot_rules(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1[:2]), ["email"], tmp_path / "s1.parquet").path
    delivered = write_csv(tmp_path / "d.csv", HEADER, [["b@x.com", "gold", "x"], ["z@x.com", "", ""]])
    union = next_snapshot("add", old, delivered, ["email"], tmp_path / "add.parquet")
    assert [r[0] for r in snapshot_rows(union.path)] == ["a@x.com", "b@x.com", "z@x.com"]
    replaced = next_snapshot("replace", old, delivered, ["email"], tmp_path / "rep.parquet")
    assert snapshot_rows(replaced.path) == snapshot_rows(
        build_snapshot(delivered, ["email"], tmp_path / "direct.parquet").path
    )
    removes = write_csv(tmp_path / "rm.csv", ["email"], [["a@x.com"], ["nobody@x.com"]])
    after_remove = next_snapshot("remove", union.path, removes, ["email"], tmp_path / "rm.parquet")
    assert [r[0] for r in snapshot_rows(after_remove.path)] == ["b@x.com", "z@x.com"]
    assert next_snapshot("remove", None, removes, ["email"], tmp_path / "empty.parquet").rows == 0
    assert next_snapshot("add", None, delivered, ["email"], tmp_path / "first.parquet").rows == 2
    with pytest.raises(ValueError, match="unknown snapshot mode"):
        next_snapshot("merge", old, delivered, ["email"], tmp_path / "x.parquet")  # type: ignore[arg-type]


def test_after_add_an_unchanged_delivery_is_not_resent(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1[:2]), ["email"], tmp_path / "s1.parquet").path
    delivered = write_csv(tmp_path / "d.csv", HEADER, V1[2:])
    union = next_snapshot("add", old, delivered, ["email"], tmp_path / "u.parquet").path
    result, _, _ = delta(tmp_path, write_csv(tmp_path / "all.csv", HEADER, V1), union)
    assert result == DeltaResult(added=0, removed=0, changed=0, unchanged=4)


def test_failed_job_marks_touched_keys_unknown(tmp_path: Path) -> None:
    old = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1), ["email"], tmp_path / "s1.parquet").path
    adds = write_csv(tmp_path / "adds.csv", HEADER, [["a@x.com", "new", ""], ["n@x.com", "x", ""]])
    removes = write_csv(tmp_path / "rm.csv", ["email"], [["d@x.com"]])
    after = snapshot_after_failure(old, [adds, removes], ["email"], tmp_path / "f.parquet")
    rows = dict(snapshot_rows(after.path))
    assert rows["a@x.com"] is None and rows["n@x.com"] is None and rows["d@x.com"] is None
    assert rows["b@x.com"] is not None and rows["c@x.com"] is not None
    # The next delta re-sends every touched key: an add if still wanted, a remove otherwise.
    result, (_, got_adds), (_, got_removes) = delta(tmp_path, tmp_path / "v1.csv", after.path)
    assert result == DeltaResult(added=0, removed=1, changed=2, unchanged=2)
    assert [r[0] for r in got_adds] == ["a@x.com", "d@x.com"] and got_removes == [["n@x.com"]]
    unchanged = snapshot_after_failure(old, [], ["email"], tmp_path / "same.parquet")
    assert snapshot_rows(unchanged.path) == snapshot_rows(old)


def test_snapshot_metadata_records_keys_and_header(tmp_path: Path) -> None:
    info = build_snapshot(write_csv(tmp_path / "v1.csv", HEADER, V1), ["email"], tmp_path / "s.parquet")
    kv = dict(duckdb.sql(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata('{info.path}')").fetchall())
    assert json.loads(kv["aex_keys"]) == ["email"] and json.loads(kv["aex_columns"]) == HEADER
    assert list(tmp_path.glob(".duckdb-tmp-*")) == [] and list(tmp_path.glob(".*.tmp")) == []
