"""What a killed process leaves (job working folders, partial blob writes) is swept at the next start."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from exchange.jobs.sweep import sweep_leftovers, temp_root, work_dir
from exchange.runtime import Runtime
from tests.conftest import make_config


def test_leftovers_of_a_killed_process_are_swept_at_start(tmp_path):
    cfg = make_config(tmp_path)
    rt = Runtime(cfg)
    # a process that made a working folder and a partial blob write, then died with kill -9
    code = ("import os, sys, tempfile, pathlib;"
            "root = pathlib.Path(sys.argv[1]) / f'{sys.argv[2]}-{os.getpid()}'; root.mkdir(parents=True);"
            "d = pathlib.Path(tempfile.mkdtemp(prefix='job-', dir=root)); (d / 'source.csv').write_text('x' * 100);"
            "os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(cfg.var_dir / "tmp"), socket.gethostname()])
    assert proc.returncode == -9
    dead = [p for p in (cfg.var_dir / "tmp").iterdir()]
    assert len(dead) == 1 and any(dead[0].rglob("source.csv"))
    blobs = cfg.var_dir / "blobs" / "audiences" / "e1" / "a"
    blobs.mkdir(parents=True)
    old_part, fresh_part = blobs / ".~tmp-abc123", blobs / ".~tmp-def456"
    old_part.write_bytes(b"half an upload")
    fresh_part.write_bytes(b"being written right now by another process")
    hour_ago = time.time() - 3600
    os.utime(old_part, (hour_ago, hour_ago))
    (blobs / "v1.csv.gz").write_bytes(b"complete blob")
    mine = work_dir(rt, "job-")  # this live process' own folder must survive
    rt.blobs  # noqa: B018 - the store's root is where parts are looked for
    assert sweep_leftovers(rt) == (1, 1)
    assert not dead[0].exists() and mine.exists() and temp_root(rt).exists()
    assert not old_part.exists() and fresh_part.exists() and (blobs / "v1.csv.gz").exists()


def test_start_background_sweeps(tmp_path):
    cfg = make_config(tmp_path, executor="inline")
    stale = cfg.var_dir / "tmp" / f"{socket.gethostname()}-999999999"
    (stale / "job-x").mkdir(parents=True)
    rt = Runtime(cfg)
    from exchange.db import upgrade

    upgrade(cfg.database_url)
    rt.start_background()
    try:
        assert not stale.exists()
    finally:
        rt.shutdown()
