"""The transform of one block of records, and the processes that run blocks in parallel.

A *block* is a run of whole lines of the source starting at a record boundary
(:meth:`~exchange.transfer.csvio.CsvStream.block`). :class:`BlockTransformer` maps it with the
compiled mapping, drops duplicates inside the block, formats the output records and the rejects
file's lines, and hash-partitions the staged keys for the cross-block dedupe
(:mod:`exchange.transfer.dedupe`). It returns bytes, never per-row objects, so handing a block's
result to the coordinating process costs a memory copy.

Two ways through a block, one semantics: a *plain* block (no ``"``, no carriage return, valid
UTF-8 — nearly every block of a real export) is split on new lines and commas, which is exactly
what the CSV reader would make of it, and mapped a column at a time by
:class:`~exchange.transfer.columns.ColumnMapper` (the rows it sets aside go through the row
mapper); any other block is read by :class:`~exchange.transfer.csvio.CsvStream` and mapped row by
row by the generated ``map_rows``. Both are checked against the plain reference in tests.

:class:`InlineRunner` runs blocks in the calling process (small sources, tests);
:class:`ProcessRunner` runs them in worker processes (``python -m exchange.transfer.blocks``)
that talk pickles over their stdin/stdout. They are plain subprocesses, not multiprocessing
children, so they can be started from daemonic job processes and Celery workers; a worker whose
parent dies sees its stdin close and exits. A process that owns its children (``exchange serve``'s
job processes) enables :data:`POOL` to keep them between transforms; all workers share one
``PYTHONHASHSEED`` because the dedupe partitions by ``hash``.
"""
from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import queue
import secrets
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing.connection import Connection
from operator import itemgetter

from exchange.transfer.columns import ColumnMapper
from exchange.transfer.csvio import CsvLimits, CsvStream, Reject, format_row
from exchange.transfer.dedupe import bucket_keys, later_copies
from exchange.transfer.mapping import MappingRule, RowRejected, compile_mapping
from exchange.transfer.rejects import RejectsWriter

__all__ = ["POOL", "BlockResult", "BlockSpec", "BlockTransformer", "InlineRunner", "ProcessRunner", "default_workers"]

_BATCH = 8192


@dataclass(frozen=True)
class BlockSpec:
    rules: list
    header: list[str]
    identifier_types: set[str]
    default_country: str | None
    limits: CsvLimits
    partitions: int


@dataclass
class BlockResult:
    index: int
    out: bytes = b""  # staged output records
    lines: int = 0  # staged lines (records with embedded newlines span several)
    rows: int = 0  # staged records
    multi: list[tuple[int, int]] = field(default_factory=list)  # (line in block, line count) when > 1
    rejects: bytes = b""  # rejects file lines, in line order
    received: int = 0
    rejected: int = 0
    duplicates: int = 0  # later copies inside this block
    hashed: int = 0
    passed_through: int = 0
    buckets: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    tail_line: int | None = None  # the block ended inside the record starting on this line


class BlockTransformer:
    """One compiled mapping applied to any number of blocks (one per worker process)."""

    def __init__(self, spec: BlockSpec):
        self.spec = spec
        self.mapper = compile_mapping(spec.rules, spec.header, identifier_types=spec.identifier_types,
                                      default_country=spec.default_country)
        self.columns = ColumnMapper([MappingRule.coerce(r) for r in spec.rules], spec.header,
                                    spec.identifier_types, spec.default_country, self.mapper)

    def run(self, index: int, first_line: int, data: bytes, final: bool, partition: bool) -> BlockResult:
        """The block's result: by columns when the block is plain (:meth:`_run_plain`), else row by row."""
        result = self._run_plain(index, first_line, data, partition)
        if result is None:
            result = self._run_rows(index, first_line, data, final, partition)
        return result

    def _run_plain(self, index: int, first_line: int, data: bytes, partition: bool) -> BlockResult | None:
        """A *plain* block, in valid UTF-8 and without carriage returns, is either unquoted or quoted
        throughout (every field of every line in quotes, no quote inside a field, as many exports
        write). It is read by splitting it on new lines and separators — exactly what the CSV
        reader would make of it — and mapped by :class:`~exchange.transfer.columns.ColumnMapper`.
        ``None`` when the block is not plain."""
        if b"\r" in data:
            return None
        quoted = b'"' in data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the block's final line end
        if not lines or max(map(len, lines)) > self.spec.limits.max_field_chars:
            return None  # (the reader would reject a field over the limit: leave that to it)
        ncols = len(self.spec.header)
        n = len(lines)
        found: list[Reject] = []
        numbers: list[int] | None = None  # line of each row, when not first_line + index
        if quoted:
            # "a","b","c" on every line: 2 × ncols quotes (so none inside a field), ncols - 1 "," separators
            if (list(map(str.count, lines, repeat('"'))).count(2 * ncols) != n
                    or list(map(str.count, lines, repeat('","'))).count(ncols - 1) != n
                    or not all(map(str.startswith, lines, repeat('"')))
                    or not all(map(str.endswith, lines, repeat('"')))):
                return None
            flat = "\n".join(lines)[1:-1].replace('"\n"', '","').split('","')
            source = [flat[k::ncols] for k in range(ncols)]
            rows = _Rows(flat, ncols, n)
        elif (list(map(str.count, lines, repeat(","))).count(ncols - 1) == n
                and (ncols > 1 or "" not in lines)):
            # every line is one record of ncols fields: split the whole text at once
            flat = ",".join(lines).split(",")
            source = [flat[k::ncols] for k in range(ncols)]
            rows = _Rows(flat, ncols, n)
        else:
            kept: list[list[str]] = []
            numbers = []
            for i, line in enumerate(lines):
                if not line:
                    continue  # a blank line
                row = line.split(",")
                if len(row) == ncols:
                    kept.append(row)
                    numbers.append(first_line + i)
                else:
                    found.append(Reject(first_line + i, row, f"expected {ncols} fields, found {len(row)}"))
            source = [list(c) for c in zip(*kept)] if kept else [[] for _ in range(ncols)]
            rows = kept
        mapper = self.mapper
        mapped = self.columns.map(source, len(rows))
        columns = mapped.columns
        counters = mapper._counters
        before = counters[0], counters[1]
        refused: set[int] = set()
        for i in mapped.aside:
            try:
                values = mapper.fn(rows[i])
            except RowRejected as exc:
                refused.add(i)
                found.append(Reject(numbers[i] if numbers is not None else first_line + i, rows[i], exc.reason))
                continue
            for column, value in zip(columns, values):
                column[i] = value
        hashed = mapped.hashed + counters[0] - before[0]
        passed = mapped.passed_through + counters[1] - before[1]
        positions = mapper.identifier_positions
        if len(positions) == 1:
            keys = columns[positions[0]]
        else:
            keys = list(map("\x00".join, zip(*(columns[p] for p in positions))))
        lines = list(map(",".join, zip(*columns)))
        if refused:  # rejected rows (few): out of the block
            keys = list(keys)
            for i in sorted(refused, reverse=True):
                del lines[i]
                del keys[i]
        first = dict(zip(reversed(keys), reversed(range(len(keys)))))  # key -> its first row
        duplicates = len(keys) - len(first)
        if duplicates:  # keep each key's first row, in input order (a near-sorted sort: linear)
            keep = sorted(first.values())
            lines = list(itemgetter(*keep)(lines)) if len(keep) > 1 else [lines[keep[0]]]
            keys = list(itemgetter(*keep)(keys)) if len(keep) > 1 else [keys[keep[0]]]
        out = "\n".join(lines) + "\n" if lines else ""
        width = len(columns)
        if ('"' in out or "\r" in out or out.count("\n") != len(lines) or out.count(",") != len(lines) * (width - 1)
                or (width == 1 and "" in lines)):
            return None  # a value the plain writer cannot write as is (cannot happen; checked anyway)
        rejects_buf = io.BytesIO()
        rejects = RejectsWriter(rejects_buf, self.spec.header, write_header=False)
        if found:
            found.sort(key=lambda reject: reject.line)
            rejects.write_all(found)
            rejects.flush()
        result = BlockResult(
            index, out=out.encode("utf-8"), lines=len(lines), rows=len(lines), rejects=rejects_buf.getvalue(),
            received=len(rows) + len(found) - len(refused), rejected=rejects.count, duplicates=duplicates,
            hashed=hashed, passed_through=passed)
        if partition:
            result.buckets = bucket_keys(keys, None, self.spec.partitions, index)
        return result

    def _run_rows(self, index: int, first_line: int, data: bytes, final: bool, partition: bool) -> BlockResult:
        spec, mapper = self.spec, self.mapper
        stream = CsvStream.block(data, spec.header, first_line, final=final, limits=spec.limits)
        map_rows = mapper.map_rows
        out: list = []  # finished lines, or lists of values still to be quoted (their indices in slow)
        keys: list[str] = []
        seen: set[str] = set()
        duplicates = hashed = passed = 0
        multi_line = False
        rejects_buf = io.BytesIO()
        rejects = RejectsWriter(rejects_buf, spec.header, write_header=False)
        for batch in stream.batches(_BATCH):
            bad: list[tuple[int, str]] = []
            slow: list[int] = []
            d, h, p = map_rows(batch.rows, seen, keys, out, bad, slow)
            duplicates, hashed, passed = duplicates + d, hashed + h, passed + p
            for j in slow:
                out[j] = line = format_row(out[j])
                multi_line = multi_line or line.count("\n") > 1
            found = batch.rejects  # the reader's, then the mapper's: written in line order
            if bad:
                rows = batch.rows
                found.extend(Reject(batch.line_of(i), rows[i], reason) for i, reason in bad)
            if found:
                found.sort(key=lambda reject: reject.line)
                rejects.write_all(found)
        rejects.flush()
        starts: list[int] | range = range(len(out))
        multi: list[tuple[int, int]] = []
        lines = len(out)
        if multi_line:  # records with embedded newlines: staged line numbers differ from indices
            starts, lines = [], 0
            for line in out:
                n = line.count("\n")
                if n > 1:
                    multi.append((lines, n))
                starts.append(lines)
                lines += n
        result = BlockResult(
            index, out="".join(out).encode("utf-8"), lines=lines, rows=len(out), multi=multi,
            rejects=rejects_buf.getvalue(), received=stream.received, rejected=rejects.count,
            duplicates=duplicates, hashed=hashed, passed_through=passed, tail_line=stream.tail_line)
        if partition:
            result.buckets = bucket_keys(keys, starts if multi_line else None, spec.partitions, index)
        return result


class _Rows:
    """Row ``i`` of a block read into one flat list of fields (made only for set-aside rows)."""

    __slots__ = ("flat", "n", "width")

    def __init__(self, flat: list[str], width: int, n: int):
        self.flat, self.width, self.n = flat, width, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> list[str]:
        return self.flat[i * self.width:(i + 1) * self.width]


class InlineRunner:
    """Runs blocks in this process, at once; the same interface as :class:`ProcessRunner`."""

    workers = 0

    def __init__(self, spec: BlockSpec):
        self._transformer = BlockTransformer(spec)
        self._done: dict[int, object] = {}
        self._next = 0

    def submit(self, kind: str, *args) -> int:
        handle, self._next = self._next, self._next + 1
        self._done[handle] = _run_task(self._transformer, kind, args)
        return handle

    def result(self, handle: int, wait=None):
        return self._done.pop(handle)

    def discard(self, handle: int) -> None:
        self._done.pop(handle, None)

    def has_room(self) -> bool:
        return not self._done

    def close(self, *, kill: bool = False) -> None:
        self._done.clear()


def _run_task(transformer: BlockTransformer, kind: str, args: tuple):
    if kind == "block":
        return transformer.run(*args)
    if kind == "dedupe":
        return later_copies(*args)
    raise ValueError(kind)


class WorkerDied(RuntimeError):
    pass


class _Worker:
    """One worker process and the two threads that feed it tasks and drain its results."""

    def __init__(self, env: dict[str, str], name: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "exchange.transfer.blocks"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        recv = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        threading.Thread(target=_drain, args=(recv, self.inbox), daemon=True, name=f"{name}-results").start()
        threading.Thread(target=_feed, args=(send, self.outbox, self.inbox), daemon=True,
                         name=f"{name}-tasks").start()

    def alive(self) -> bool:
        return self.proc.poll() is None and self.inbox.empty()  # (a dead worker's drain thread posts None)

    def stop(self, *, kill: bool = False) -> None:
        self.outbox.put(None)  # the feeder closes the pipe: the worker reads EOF and exits
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Pool:
    """Idle workers kept between transforms, so that a job process pays their start-up (~0.2 s of
    CPU each: the interpreter, numpy and this package) once, not per job. Every worker of the pool
    shares one ``PYTHONHASHSEED`` (the dedupe partitions by ``hash``). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        # Workers are kept (and prestarted) only in processes that own their lifetime and ask for it
        # (exchange serve's job processes); elsewhere — a Celery prefork child, a web thread, tests —
        # they are stopped after each transform as before (a Celery child keeping idle children
        # stalled the scaled kill -9 test).
        self.enabled = False
        self._env: dict[str, str] | None = None
        self._started = 0

    def _environment(self) -> dict[str, str]:
        if self._env is None:
            env = dict(os.environ)
            env["PYTHONHASHSEED"] = str(secrets.randbelow(1 << 32))
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
            self._env = env
        return self._env

    def take(self, n: int) -> list[_Worker]:
        with self._lock:
            out: list[_Worker] = []
            while self._idle and len(out) < n:
                w = self._idle.pop()
                if w.alive():
                    out.append(w)
                else:
                    w.stop(kill=True)
            while len(out) < n:
                self._started += 1
                out.append(_Worker(self._environment(), f"transform-{self._started}"))
            return out

    def give_back(self, workers: list[_Worker]) -> None:
        """Keep workers waiting for a spec (up to twice the default count, when :attr:`enabled`);
        stop the others."""
        keep = max(default_workers() * 2, 2) if self.enabled else 0
        with self._lock:
            for w in workers:
                if len(self._idle) < keep and w.alive():
                    self._idle.append(w)
                else:
                    w.stop()

    def prestart(self, n: int | None = None) -> None:
        """Have ``n`` (default: :func:`default_workers`) idle workers, started now: they import
        while the caller goes on (a job process calls this before fetching its source). Does
        nothing unless the pool is :attr:`enabled`."""
        if self.enabled:
            self.give_back(self.take(default_workers() if n is None else n))

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for w in idle:
            w.stop()


_RESET = b"reset"  # ends a transform: the worker drops its spec and waits for the next one
POOL = _Pool()


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class ProcessRunner:
    """``workers`` processes, each running its tasks in order; results are fetched by handle.

    Workers come from :data:`POOL` and go back to it when the transform ends cleanly. A thread per
    worker drains its results as they come, so a worker never blocks writing a result while the
    coordinator is blocked handing it the next block (at most ``depth`` tasks are queued per
    worker, which bounds what is held)."""

    def __init__(self, spec: BlockSpec, workers: int, *, depth: int = 2):
        self.workers = workers
        self.depth = depth
        self._pool = POOL
        self._workers = self._pool.take(workers)
        self._procs: list[subprocess.Popen] = [w.proc for w in self._workers]
        self._send: list[queue.Queue] = [w.outbox for w in self._workers]
        self._inbox: list[queue.Queue] = [w.inbox for w in self._workers]
        self._queued: list[deque[int]] = [deque() for _ in self._workers]
        self._where: dict[int, int] = {}
        self._done: dict[int, object] = {}
        self._stale: set[int] = set()
        self._next = 0
        payload = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        for outbox in self._send:
            outbox.put(payload)

    def has_room(self) -> bool:
        return min(len(q) for q in self._queued) < self.depth

    def submit(self, kind: str, *args) -> int:
        w = min(range(self.workers), key=lambda i: len(self._queued[i]))
        handle, self._next = self._next, self._next + 1
        self._send[w].put(pickle.dumps((kind, args), protocol=pickle.HIGHEST_PROTOCOL))
        self._queued[w].append(handle)
        self._where[handle] = w
        return handle

    def _receive(self, w: int, timeout: float) -> bool:
        try:
            data = self._inbox[w].get(timeout=timeout)
        except queue.Empty:
            return False
        if data is None:
            raise WorkerDied("a transform worker exited unexpectedly")
        handle = self._queued[w].popleft()
        del self._where[handle]
        if handle in self._stale:
            self._stale.discard(handle)
            return True
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        self._done[handle] = value
        return True

    def result(self, handle: int, wait=None):
        """The task's result; ``wait()`` is called about every 0.2 s while it is not ready."""
        while handle not in self._done:
            if not self._receive(self._where[handle], 0.2) and wait is not None:
                wait()
        return self._done.pop(handle)

    def discard(self, handle: int) -> None:
        if handle in self._done:
            del self._done[handle]
        elif handle in self._where:
            self._stale.add(handle)

    def close(self, *, kill: bool = False) -> None:
        """Give the workers back to the pool; stop them instead when ``kill`` or when a task is still
        running on them (a failed or cancelled transform), so nothing of this transform lingers."""
        workers, self._workers, self._procs, self._send = self._workers, [], [], []
        idle = [w for w, q in zip(workers, self._queued) if not q]
        if kill or len(idle) != len(workers):
            for w in workers:
                w.stop(kill=True)
            return
        for w in idle:
            w.outbox.put(_RESET)
        self._pool.give_back(idle)


def _feed(send: Connection, outbox: queue.Queue, inbox: queue.Queue) -> None:
    """Hand tasks to one worker, so that submitting never waits for a busy worker."""
    try:
        while (data := outbox.get()) is not None:
            send.send_bytes(data)
    except OSError:
        inbox.put(None)  # the worker is gone: whoever waits for a result learns it
    finally:
        with contextlib.suppress(OSError):
            send.close()


def _drain(recv: Connection, inbox: queue.Queue) -> None:
    try:
        while True:
            inbox.put(recv.recv_bytes())
    except (EOFError, OSError):
        inbox.put(None)
    finally:
        recv.close()


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM) in MB."""
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith("VmHWM")).split()[1]) / 1024


def _worker_main() -> None:
    recv = Connection(os.dup(0), writable=False)
    send = Connection(os.dup(1), readable=False)
    sys.stdout = sys.stderr  # fd 1 carries results only
    # A block makes and frees ~10 objects per row and keeps none: the cyclic collector would walk
    # them all for nothing (it costs ~20 % of a block). Collect between tasks instead.
    gc.disable()
    while True:  # one transform after another: a spec, its tasks, then _RESET
        try:
            spec: BlockSpec = pickle.loads(recv.recv_bytes())
        except EOFError:
            return
        transformer = BlockTransformer(spec)
        while True:
            try:
                data = recv.recv_bytes()
            except EOFError:
                return
            if data == _RESET:
                break
            kind, args = pickle.loads(data)
            try:
                reply = (True, _run_task(transformer, kind, args))
            except Exception as exc:  # noqa: BLE001 - handed back to the coordinator
                reply = (False, exc)
            send.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            del reply
            gc.collect(0)
        del transformer
        gc.collect()


if __name__ == "__main__":
    # Run the imported module's copy, so that results pickle as exchange.transfer.blocks classes.
    from exchange.transfer.blocks import _worker_main as main

    main()
