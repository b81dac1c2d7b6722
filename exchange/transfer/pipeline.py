"""The transform stage: source CSV chunks in, mapped + deduplicated CSV and a rejects file out.

One engine for every input. :func:`run_transform` is the coordinator: it reads the source once
(gunzipping and running :mod:`~exchange.transfer.csvio`'s byte checks: bounds, NUL bytes, line
length, UTF-8), parses the header, and cuts the rest into *blocks* of about ``block_bytes`` at line
ends. Each block is transformed by :class:`~exchange.transfer.blocks.BlockTransformer`, in worker
processes when the source is larger than one block (``workers``, default: the CPU count, at most
4) or in this process otherwise; the coordinator appends the results in block order to the
staging and rejects files. Memory holds a few blocks per worker and one dedupe partition,
whatever the audience size.

Record boundaries: a block is cut at a line end, and a quoted field may run on past it. The
block's reader notices (the record is still open when the block's text ends), leaves that record
out and reports its start line; the coordinator reads it again at the head of the next block and
transforms that one again (the speculative result assumed a record boundary). Line numbers,
rejects and their reasons are therefore those of one sequential reader over the whole body.

Dedupe (:mod:`~exchange.transfer.dedupe`): exact, first occurrence wins, output in input order.
Copies inside a block are dropped by the block; across blocks, keys are hash-partitioned to temp
files and each partition is resolved on its own (in parallel), then the later copies are removed
while the staging file is copied to the output.

Fatal problems (:class:`~exchange.errors.CsvDataError`, a mapping that does not fit the header, a
cancellation, checked between blocks) raise before the output path is touched: the output and
rejects files are written under temporary names and renamed into place only at the end.

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
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from exchange.errors import CsvDataError, ExchangeError, ValidationFailed
from exchange.transfer.blocks import BlockResult, BlockSpec, InlineRunner, ProcessRunner, default_workers
from exchange.transfer.csvio import CsvLimits, CsvStream, _ByteSource, format_row
from exchange.transfer.dedupe import PartitionFiles, drop_lines
from exchange.transfer.mapping import MappingRule, compile_mapping
from exchange.transfer.rejects import RejectsWriter

__all__ = ["BLOCK_BYTES", "TransformCancelled", "TransformResult", "exceeds_threshold", "run_transform"]

BLOCK_BYTES = 256 << 10  # ~8k rows: measured faster per row than 0.5-2 MiB (lists that fit in cache, fewer page faults)
_MASK = (1 << 32) - 1
_HEADER_SEARCH = 64 << 20  # bytes read while looking for the end of the header record


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
    workers: int = 0


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
    workers: int | None = None,
    block_bytes: int = BLOCK_BYTES,
    dedupe_partitions: int = 64,
) -> TransformResult:
    limits = limits or CsvLimits()
    rules = list(rules)
    source = _BlockReader(chunks, gzip=gzip, limits=limits, block_bytes=block_bytes)
    header = source.read_header()
    try:
        mapper = compile_mapping(rules, header, identifier_types=identifier_types,
                                 default_country=default_country)
    except ValidationFailed as exc:
        if any(key.endswith(".source") for key in exc.errors or {}):
            raise CsvDataError("the file lacks columns the mapping reads", errors=exc.errors) from None
        raise
    spec = BlockSpec(rules, header, set(identifier_types), default_country, limits, dedupe_partitions)
    workdir = tempfile.mkdtemp(prefix=".transform-", dir=os.path.dirname(os.path.abspath(out_path)))
    runner: InlineRunner | ProcessRunner | None = None
    ok = False
    try:
        ahead = [b for b in (source.next_block(), source.next_block()) if b is not None]
        many = len(ahead) > 1
        n = default_workers() if workers is None else workers
        runner = ProcessRunner(spec, n) if many and n > 0 else InlineRunner(spec)
        job = _Job(workdir, header, format_row(mapper.columns).encode("utf-8"), dedupe_partitions)
        try:
            _run_blocks(source, ahead, runner, job, many, cancel_check, progress)
            drops = _later_copies(runner, job, cancel_check) if many else []
        finally:
            job.close()
        result = job.finish(drops, out_path, rejects_path, list(mapper.columns), runner.workers)
        ok = True
        return result
    finally:
        if runner is not None:
            runner.close(kill=not ok)
        shutil.rmtree(workdir, ignore_errors=True)


class _Job:
    """The coordinator's files and tallies."""

    def __init__(self, workdir: str, header: list[str], out_header: bytes, partitions: int):
        self.staging_path = os.path.join(workdir, "staging.csv")
        self.rejects_tmp = os.path.join(workdir, "rejects.csv")
        self.staging = open(self.staging_path, "wb")  # noqa: SIM115 - closed by close()
        self.rejects = open(self.rejects_tmp, "wb")  # noqa: SIM115
        writer = RejectsWriter(self.rejects, header)
        writer.flush()
        self.rejects_bytes = writer.bytes_written
        self.staging.write(out_header)
        self.digest = hashlib.sha256(out_header)
        self.out_bytes = len(out_header)
        self.lines = 1  # staging line 0 is the header
        self.bases = array("q")  # first staging line of each block
        self.blocks: list[tuple[int, int, int, int]] = []  # (first line, lines, byte offset, bytes) of each block
        self.digests: list = []  # the output's digest before each block (to resume it after drops)
        self.multi: dict[int, int] = {}
        self.partitions = PartitionFiles(workdir, partitions)
        self.header = header
        self.counts = {"received": 0, "rejected": 0, "hashed": 0, "passed_through": 0, "duplicates": 0}
        self.staged = 0

    def add(self, r: BlockResult) -> None:
        assert r.index == len(self.bases), (r.index, len(self.bases))
        self.bases.append(self.lines)
        self.blocks.append((self.lines, r.lines, self.out_bytes, len(r.out)))
        self.digests.append(self.digest.copy())
        self.staging.write(r.out)
        self.digest.update(r.out)
        self.out_bytes += len(r.out)
        for line, n in r.multi:
            self.multi[self.lines + line] = n
        self.lines += r.lines
        self.staged += r.rows
        self.rejects.write(r.rejects)
        self.rejects_bytes += len(r.rejects)
        c = self.counts
        c["received"] += r.received
        c["rejected"] += r.rejected
        c["hashed"] += r.hashed
        c["passed_through"] += r.passed_through
        c["duplicates"] += r.duplicates
        if r.buckets:
            self.partitions.append(r.buckets)

    def close(self) -> None:
        self.staging.close()
        self.rejects.close()
        self.partitions.close()

    def finish(self, drops: list[int], out_path: str, rejects_path: str, columns: list[str],
               workers: int) -> TransformResult:
        counts = dict(self.counts)
        counts["duplicates"] += len(drops)
        counts["valid"] = self.staged - len(drops)
        out_sha, out_bytes = self.digest.hexdigest(), self.out_bytes
        if drops:
            out_sha, out_bytes = self._drop(drops)
        os.replace(self.rejects_tmp, rejects_path)
        os.replace(self.staging_path, out_path)
        return TransformResult(columns=columns, counts=counts, rows_out=counts["valid"], out_sha256=out_sha,
                               out_bytes=out_bytes, rejects_bytes=self.rejects_bytes,
                               source_columns=list(self.header), workers=workers)


    def _drop(self, drops: list[int]) -> tuple[str, int]:
        """Remove the later copies from the staging file in place, from the first block that has
        one on (the bytes before it stay where they are, and so does their digest); returns the
        output's SHA-256 and size."""
        b = bisect_right(self.bases, drops[0]) - 1
        digest = self.digests[b]
        write = self.blocks[b][2]
        k = 0
        with open(self.staging_path, "r+b") as f:
            for first, lines, offset, size in self.blocks[b:]:
                f.seek(offset)
                data = f.read(size)
                j = bisect_left(drops, first + lines, k)
                if j > k:
                    data = drop_lines(data, first, drops[k:j], self.multi)
                    k = j
                f.seek(write)
                f.write(data)
                digest.update(data)
                write += len(data)
            f.truncate(write)
        return digest.hexdigest(), write


def _run_blocks(source: _BlockReader, ahead: list, runner, job: _Job, partition: bool,
                cancel_check: Callable[[], bool] | None, progress: Callable[[int], None] | None) -> None:
    """Submit blocks in order, keep the workers fed, and hand results to ``job`` in order."""
    pending: deque[list] = deque()  # [index, first_line, data, final, handle]
    carry: tuple[int, bytes] | None = None  # an open record to read again with the next block
    index = 0
    exhausted = False

    def check() -> None:
        if cancel_check is not None and cancel_check():
            raise TransformCancelled("the job was cancelled during the transform")

    def submit(first_line: int, data: bytes, final: bool) -> None:
        nonlocal index
        handle = runner.submit("block", index, first_line, data, final, partition)
        pending.append([index, first_line, data, final, handle])
        index += 1

    while True:
        check()
        while not exhausted and runner.has_room():
            block = ahead.pop(0) if ahead else source.next_block()
            if block is None:
                exhausted = True
                if carry is not None:
                    submit(carry[0], carry[1], True)
                    carry = None
                break
            first_line, data, final = block
            if carry is not None:
                first_line, data, carry = carry[0], carry[1] + data, None
            submit(first_line, data, final)
        if not pending:
            break
        entry = pending.popleft()
        result: BlockResult = runner.result(entry[4], wait=check)
        if result.tail_line is not None:
            tail = _from_line(entry[2], result.tail_line - entry[1])
            if pending:  # the next block was read as if it began a record: read it again
                nxt = pending[0]
                runner.discard(nxt[4])
                nxt[1], nxt[2] = result.tail_line, tail + nxt[2]
                nxt[4] = runner.submit("block", nxt[0], nxt[1], nxt[2], nxt[3], partition)
            elif exhausted:
                submit(result.tail_line, tail, True)
            else:
                carry = (result.tail_line, tail)
        job.add(result)
        if progress is not None:
            progress(job.counts["received"])


def _from_line(data: bytes, skip: int) -> bytes:
    """``data`` from its ``skip``-th line on (0-based)."""
    pos = 0
    for _ in range(skip):
        pos = data.index(b"\n", pos) + 1
    return data[pos:]


def _later_copies(runner, job: _Job, cancel_check: Callable[[], bool] | None) -> list[int]:
    """Staging lines (ascending) of the later copies of keys seen in earlier blocks."""
    job.partitions.close()

    def check() -> None:
        if cancel_check is not None and cancel_check():
            raise TransformCancelled("the job was cancelled during the transform")

    handles = [runner.submit("dedupe", *job.partitions.paths[p]) for p in sorted(job.partitions.used)]
    bases, drops = job.bases, []
    for handle in handles:
        found = array("q")
        found.frombytes(runner.result(handle, wait=check))
        drops.extend(bases[p >> 32] + (p & _MASK) for p in found)
    drops.sort()
    return drops


class _BlockReader:
    """The source as a header and blocks of whole lines, with csvio's byte checks on the way."""

    def __init__(self, chunks: Iterable[bytes], *, gzip: bool, limits: CsvLimits, block_bytes: int):
        self._src = _ByteSource(chunks, gzip=gzip, limits=limits)
        self._limits = limits
        self._pending: list[bytes] = []
        self._size = 0
        self._eof = False
        self.block_bytes = max(1, block_bytes)
        self.line = 1  # the line the next block starts on

    def _fill(self, target: int) -> None:
        src = self._src
        while self._size < target and not self._eof:
            piece = src._next_piece()
            if piece is None:
                self._eof = True
                src._finish_utf8()
            elif piece:
                src._inspect(piece)
                self._pending.append(piece)
                self._size += len(piece)

    def _take(self) -> bytes:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._size = [], 0
        return data

    def read_header(self) -> list[str]:
        target = self.block_bytes
        while True:
            self._fill(target)
            buf = self._take()
            self._pending, self._size = [buf], len(buf)
            try:
                stream = CsvStream([buf], limits=self._limits)
            except CsvDataError:
                # The header record may be cut short (blank lines only so far, a field cut at a
                # comma, a quoted field running on): read on, within a bound.
                if self._eof or len(buf) > _HEADER_SEARCH:
                    raise
                target = len(buf) * 2 + 1
                continue
            used = stream._reader.line_num
            if self._eof or used < buf.count(b"\n") or len(buf) > _HEADER_SEARCH:
                break
            target = len(buf) * 2 + 1  # the header record may go on: read more
        rest = _from_line(buf, used) if used <= buf.count(b"\n") else b""
        self._pending, self._size = ([rest], len(rest)) if rest else ([], 0)
        self.line = used + 1
        self.header = stream.header
        return stream.header

    def next_block(self) -> tuple[int, bytes, bool] | None:
        target = self.block_bytes
        while True:
            self._fill(target)
            if self._eof and self._size <= self.block_bytes:
                if not self._size:
                    return None
                data = self._take()
                first, self.line = self.line, self.line + data.count(b"\n")
                return first, data, True
            buf = self._take()
            cut = buf.rfind(b"\n", 0, self.block_bytes) + 1 or buf.find(b"\n", self.block_bytes) + 1
            if not cut and self._eof:
                first, self.line = self.line, self.line + buf.count(b"\n")
                return first, buf, True
            if not cut:  # no line end yet (a long line, or tiny blocks): read more
                self._pending, self._size = [buf], len(buf)
                target = len(buf) + self.block_bytes
                continue
            data, rest = buf[:cut], buf[cut:]
            if rest:
                self._pending, self._size = [rest], len(rest)
            first, self.line = self.line, self.line + data.count(b"\n")
            return first, data, False
