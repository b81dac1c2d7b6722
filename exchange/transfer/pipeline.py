"""The transform stage: source CSV chunks in, mapped + deduplicated CSV and a rejects file out.

:func:`run_transform` streams: memory holds one batch of rows, the dedupe set (bounded, see
:mod:`exchange.transfer.dedupe`) and file buffers, whatever the audience size. Row problems become
rejects with their line and reason; fatal problems (:class:`~exchange.errors.CsvDataError`, a
mapping that does not fit the header, a cancellation) raise before the output path is touched,
because the output and rejects files are written under temporary names and renamed into place only
at the end (atomic for readers; not fsynced, the job engine redoes a phase after a crash).

Counts: ``received`` = data records read (rejects included, blank lines not), ``rejected``,
``duplicates`` (later copies of an identifier key already delivered), ``valid`` = rows written,
so ``received == valid + rejected + duplicates``; ``hashed`` / ``passed_through`` count identifier
values hashed from raw values or kept as existing hashes, duplicates included. Rejects are written
in line order. Whether the job fails on rejects is the caller's decision: :func:`exceeds_threshold`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from exchange.errors import CsvDataError, ExchangeError, ValidationFailed
from exchange.transfer.csvio import CsvLimits, CsvStream, Reject, format_row, open_csv
from exchange.transfer.dedupe import Deduper, copy_without
from exchange.transfer.mapping import MappingRule, RowRejected, compile_mapping
from exchange.transfer.rejects import RejectsWriter

__all__ = ["TransformCancelled", "TransformResult", "exceeds_threshold", "run_transform"]

_BATCH = 8192


class TransformCancelled(ExchangeError):
    status = 409
    title = "Cancelled"
    type_slug = "cancelled"


@dataclass(frozen=True)
class TransformResult:
    columns: list[str]
    counts: dict[str, int]
    rows_out: int
    out_sha256: str
    out_bytes: int
    rejects_bytes: int = 0
    source_columns: list[str] = field(default_factory=list)


def exceeds_threshold(result: TransformResult, threshold: float) -> bool:
    """True when the share of rejected rows is above ``threshold`` (0.10 = 10 %)."""
    received = result.counts["received"]
    return received > 0 and result.counts["rejected"] / received > threshold


def run_transform(
    chunks: Iterable[bytes],
    *,
    gzip: bool,
    rules: Iterable[MappingRule | Mapping],
    identifier_types: set[str],
    out_path: str,
    rejects_path: str,
    limits: CsvLimits | None = None,
    default_country: str | None = None,
    cancel_check: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    dedupe_memory_keys: int = 2_000_000,
    dedupe_memory_bytes: int = 32 << 20,
    dedupe_partitions: int = 64,
) -> TransformResult:
    from exchange.transfer.columnar import try_columnar  # imported late: it imports this module

    rules = list(rules)
    fast, chunks = try_columnar(chunks, gzip=gzip, rules=rules, identifier_types=identifier_types,
                                out_path=out_path, rejects_path=rejects_path, limits=limits,
                                default_country=default_country, cancel_check=cancel_check,
                                progress=progress)
    if fast is not None:
        return fast
    stream = open_csv(chunks, gzip=gzip, limits=limits or CsvLimits())
    try:
        mapper = compile_mapping(rules, stream.header, identifier_types=identifier_types,
                                 default_country=default_country)
    except ValidationFailed as exc:
        if any(key.endswith(".source") for key in exc.errors or {}):
            raise CsvDataError("the file lacks columns the mapping reads", errors=exc.errors) from None
        raise
    out_dir = os.path.dirname(os.path.abspath(out_path))
    workdir = tempfile.mkdtemp(prefix=".transform-", dir=out_dir)
    deduper = Deduper(workdir, memory_keys=dedupe_memory_keys, memory_bytes=dedupe_memory_bytes,
                      partitions=dedupe_partitions)
    try:
        staging = os.path.join(workdir, "staging.csv")
        rejects_tmp = os.path.join(workdir, "rejects.csv")
        with open(staging, "wb") as out, open(rejects_tmp, "wb") as rejects_file:
            rejects = RejectsWriter(rejects_file, stream.header)
            digest = hashlib.sha256()
            header = format_row(mapper.columns).encode("utf-8")
            out.write(header)
            digest.update(header)
            rows_staged, staged_bytes = _transform_rows(
                stream, mapper, deduper, out, digest, rejects, cancel_check, progress)
            rejects.flush()
        counts = {"received": stream.received, "rejected": rejects.count, "hashed": mapper.hashed,
                  "passed_through": mapper.passed_through}
        drops, multi = deduper.finish()
        if deduper.spilled:
            final = os.path.join(workdir, "output.csv")
            with open(staging, "rb") as src, open(final, "wb") as dst:
                copy_without(src, dst, drops, multi)
            out_sha, out_bytes = _file_digest(final)
        else:
            final, out_sha, out_bytes = staging, digest.hexdigest(), len(header) + staged_bytes
        counts["duplicates"] = deduper.duplicates
        counts["valid"] = rows_staged - deduper.dropped_from_staging
        os.replace(rejects_tmp, rejects_path)
        os.replace(final, out_path)
        return TransformResult(
            columns=list(mapper.columns), counts=counts, rows_out=counts["valid"], out_sha256=out_sha,
            out_bytes=out_bytes, rejects_bytes=rejects.bytes_written, source_columns=list(stream.header),
        )
    finally:
        deduper.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _transform_rows(stream: CsvStream, mapper, deduper: Deduper, out, digest, rejects: RejectsWriter,
                    cancel_check: Callable[[], bool] | None,
                    progress: Callable[[int], None] | None) -> tuple[int, int]:
    """The hot loop; returns (rows staged, bytes staged). Kept flat and local-variable heavy."""
    fn, key = mapper.fn, mapper.key
    commas = len(mapper.columns) - 1
    staged_line = 1  # staging line 0 is the header
    rows_staged = staged_bytes = 0
    for batch in stream.batches(_BATCH):
        if cancel_check is not None and cancel_check():
            raise TransformCancelled("the job was cancelled during the transform")
        check = deduper.check  # changes once the deduper spills to disk
        bad: list[Reject] = batch.rejects
        buf: list[str] = []
        for i, row in enumerate(batch.rows):
            try:
                values = fn(row)
            except RowRejected as exc:
                bad.append(Reject(batch.line_of(i), row, exc.reason))
                continue
            line = ",".join(values)
            if '"' not in line and "\n" not in line and "\r" not in line and line.count(",") == commas:
                nlines = 1
                line += "\n"
            else:
                line = format_row(values)
                nlines = line.count("\n")
            if check(key(values), staged_line, nlines):
                buf.append(line)
                staged_line += nlines
        if buf:
            data = "".join(buf).encode("utf-8")
            out.write(data)
            digest.update(data)
            staged_bytes += len(data)
            rows_staged += len(buf)
        if bad:
            bad.sort(key=lambda reject: reject.line)
            rejects.write_all(bad)
        if progress is not None:
            progress(stream.received)
    return rows_staged, staged_bytes


def _file_digest(path: str) -> tuple[str, int]:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
    return digest.hexdigest(), os.path.getsize(path)
