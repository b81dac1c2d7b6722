"""Working folders of jobs, and sweeping what a killed process left behind.

Each process keeps its job working folders under ``<var_dir>/tmp/<host>-<pid>/`` (not the system
temporary folder, where nobody would know whose they are). At start, :func:`sweep_leftovers`
removes the folders of processes of this host that no longer exist, and the blob store's partial
writes (``.~tmp-*`` files, renamed into place only when complete) that nobody has written to for
``temp_part_max_age_seconds``: after a ``kill -9`` neither stays behind for ever. A part still
being written is never that old (uploads and downloads write every few hundred kilobytes), so
other processes sharing the blob folder are not disturbed.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)
TEMP_PART_PREFIX = ".~tmp-"
_made: set[Path] = set()  # roots this process created (a reused pid's old folder is not among them)


def _host() -> str:
    return socket.gethostname().replace(os.sep, "_")


def temp_root(rt) -> Path:
    """This process' folder for job working files (created on demand)."""
    root = Path(rt.config.var_dir).resolve() / "tmp" / f"{_host()}-{os.getpid()}"
    root.mkdir(parents=True, exist_ok=True)
    _made.add(root)
    return root


def work_dir(rt, prefix: str) -> Path:
    """A new working folder for one job step, inside :func:`temp_root`."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=temp_root(rt)))


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_work_dirs(rt) -> int:
    """Remove the working folders of dead processes of this host; returns how many were removed."""
    base = Path(rt.config.var_dir).resolve() / "tmp"
    if not base.is_dir():
        return 0
    host, removed = _host(), 0
    for entry in base.iterdir():
        name_host, _, pid = entry.name.rpartition("-")
        if not entry.is_dir() or name_host != host or not pid.isdigit():
            continue
        mine = int(pid) == os.getpid()
        if (mine and entry.resolve() not in _made) or (not mine and not pid_alive(int(pid))):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def sweep_blob_parts(rt, max_age: float) -> int:
    """Delete partial blob writes untouched for ``max_age`` seconds (local blob folder only)."""
    root = getattr(rt.blobs, "root", None)
    if root is None or not Path(root).is_dir():
        return 0  # object stores write parts server-side (multipart) and expire them by policy
    cutoff, removed = time.time() - max_age, 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.startswith(TEMP_PART_PREFIX):
                continue
            path = os.path.join(dirpath, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue  # finished (renamed) or removed meanwhile
    return removed


def sweep_leftovers(rt) -> tuple[int, int]:
    """Both sweeps; never raises (a start must not fail because a leftover could not be removed)."""
    try:
        dirs = sweep_work_dirs(rt)
        parts = sweep_blob_parts(rt, rt.config.temp_part_max_age_seconds)
    except Exception as exc:  # noqa: BLE001
        log.warning("sweeping leftovers failed: %s", exc)
        return 0, 0
    if dirs or parts:
        log.info("swept %d job working folder(s) and %d partial blob write(s) left by stopped processes",
                 dirs, parts)
    return dirs, parts
