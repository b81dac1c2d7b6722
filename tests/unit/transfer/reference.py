"""A tiny, slow, obvious transform: the semantics the engine must reproduce, written plainly.

Everything in memory, one pass, no blocks, no workers, no partitions: decode the whole body,
read it with one csv reader, number lines by counting what the reader consumed, keep the first
row of every key in a dict, write with csv.writer. Per-value rules (normalize_email, sha256, …)
come from the compiled mapper; they are checked against the shared vectors elsewhere
(test_mapping.py, test_normalize.py), not here.
"""
from __future__ import annotations

import csv
import gzip as gzip_module
import io

from exchange.errors import CsvDataError
from exchange.transfer.mapping import RowRejected, compile_mapping
from exchange.transfer.rejects import neutralize

FIELD_LIMIT = 65536


def reference_transform(body: bytes, rules: list, identifier_types: set[str], *, gzip: bool = False,
                        max_line_bytes: int = 1_048_576) -> dict:
    """``{"header", "out": [rows], "rejects": [rows], "counts"}``; raises CsvDataError when fatal."""
    data = gzip_module.decompress(body) if gzip else body
    if b"\x00" in data:
        raise CsvDataError("NUL byte")
    if any(len(line) > max_line_bytes for line in data.split(b"\n")):
        raise CsvDataError("line too long")
    bad_utf8 = False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        bad_utf8 = True
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    lines = io.StringIO(text, newline="\n").readlines()  # split on \n only, like the engine
    csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(iter(lines), strict=False)

    records = []  # (start line, fields or None, csv error)
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append((end + 1, None, str(exc)))
            end = reader.line_num
            continue
        if row:
            records.append((end + 1, row, None))
        end = reader.line_num
    if not records or records[0][1] is None:
        raise CsvDataError("no header")
    header = [name.strip() for name in records[0][1]]
    if any("\udc80" <= c <= "\udcff" for name in header for c in name):
        raise CsvDataError("header not UTF-8")
    if not all(header) or len(set(header)) != len(header):
        raise CsvDataError("bad header")
    mapper = compile_mapping(rules, header, identifier_types=identifier_types)

    out, rejects, first = [], [], {}
    counts = {"received": 0, "rejected": 0, "duplicates": 0, "valid": 0}
    for line, fields, error in records[1:]:
        counts["received"] += 1
        reason = None
        if error is not None:
            fields = []
            if "field limit" in error:
                reason = f"a field is longer than {FIELD_LIMIT} characters"
            elif "new-line character" in error:
                reason = "malformed CSV: carriage return inside an unquoted field"
            else:
                reason = f"malformed CSV: {error}"
        elif bad_utf8 and any("\udc80" <= c <= "\udcff" for f in fields for c in f):
            reason = "invalid UTF-8 in row"
        elif len(fields) != len(header):
            reason = f"expected {len(header)} fields, found {len(fields)}"
        else:
            try:
                values = mapper(fields)
            except RowRejected as exc:
                reason = exc.reason
        if reason is not None:
            padded = fields + [""] * (len(header) - len(fields))
            rejects.append([*padded, str(line), reason])
            continue
        key = tuple(values[i] for i in mapper.identifier_positions)
        if key in first:
            counts["duplicates"] += 1
        else:
            first[key] = line
            out.append(values)
    counts["rejected"], counts["valid"] = len(rejects), len(out)
    rejects = [[neutralize(v) for v in r] for r in rejects]
    return {"header": list(mapper.columns), "out": out, "rejects": rejects, "counts": counts,
            "source_header": header}


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
