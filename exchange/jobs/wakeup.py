"""Wake idle job workers of other processes on this host at once when a job is queued.

The web workers of ``exchange serve`` are separate processes from the runner whose job workers claim
jobs, so a share created by ``POST /v1/shares`` used to wait for the workers' next poll. Every
executor that runs jobs here binds a UNIX datagram socket in ``<EXCHANGE_VAR_DIR>/run/wake/`` and
:func:`notify` sends one byte to each socket in that folder: a few microseconds, never blocking (a
receiver with a full queue has a wake pending already). Sockets left by a killed process refuse the
datagram and are removed. Polling stays as the fallback (other hosts, a lost datagram), so nothing
depends on the wake for correctness, only for promptness. PostgreSQL or SQLite: the database plays
no part in it.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
SUFFIX = ".sock"


def wake_dir(var_dir: Path | str) -> Path:
    """``<var_dir>/run/wake``; a short folder in the temp dir named after it when that path is too long
    for a socket address (108 bytes on Linux). Every process of one var dir computes the same."""
    preferred = Path(var_dir).resolve() / "run" / "wake"
    if len(str(preferred)) <= 70:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"exchange-wake-{os.getuid()}-{digest}"


def notify(folder: Path) -> int:
    """Wake every listener in ``folder``; returns how many were reached."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0  # nobody listens on this host (no runner started yet)
    reached = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for name in names:
            if not name.endswith(SUFFIX):
                continue
            path = folder / name
            try:
                sock.sendto(b"!", str(path))
                reached += 1
            except BlockingIOError:
                reached += 1  # its queue is full: it has wakes pending already
            except (ConnectionRefusedError, FileNotFoundError):
                _remove_stale(path)
            except OSError as exc:  # e.g. a path too long for a socket address: polling still works
                if exc.errno != errno.ENOENT:
                    log.debug("wake %s failed: %s", path, exc)
    return reached


def _remove_stale(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class WakeListener:
    """A socket in the wake folder and a thread calling ``on_wake()`` for every datagram (coalesced)."""

    def __init__(self, folder: Path, on_wake: Callable[[], None]) -> None:
        self.folder, self.on_wake = folder, on_wake
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Bind and listen; False (and polling alone) when the folder or the socket cannot be made."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(self.path))
        except OSError as exc:
            log.warning("job wake socket unavailable (%s); idle workers poll only", exc)
            return False
        sock.settimeout(1.0)  # to see the stop flag
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="exchange-job-wake", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                self._sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self._drain()
            try:
                self.on_wake()
            except Exception:  # noqa: BLE001 - a failed wake leaves the poll to find the job
                log.debug("job wake callback failed", exc_info=True)

    def _drain(self) -> None:
        assert self._sock is not None
        self._sock.setblocking(False)
        try:
            while True:
                self._sock.recv(64)
        except OSError:
            pass
        finally:
            self._sock.settimeout(1.0)

    def stop(self) -> None:
        self._stop.set()
        _remove_stale(self.path)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
