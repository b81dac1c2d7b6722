"""The README's command blocks (and the docs' runnable ones) run as written against a fresh var dir."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.docs.blocks import PORTS, REPO, blocks, free_ports, scratch_clone, script

pytestmark = pytest.mark.slow


def _run(selected, tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    clone = scratch_clone(tmp_path / "clone")
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    path = tmp_path / "docs.sh"
    path.write_text(script(selected, ports))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "VIRTUAL_ENV"))}
    proc = subprocess.Popen(["bash", str(path)], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the documentation blocks did not finish in {timeout:g} s:\n{output[-6000:]}")
    finally:
        try:  # servers the blocks left running (a reader's shell would keep them too)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, output, "")


def test_readme_blocks_run_as_written(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("the README's curl quickstart needs curl")
    found = blocks(REPO / "README.md", only_runnable=False)
    selected = [b for b in found if not b.skipped]
    assert len(selected) >= 9 and any(b.language == "python" for b in selected)
    assert all("make run" in b.text for b in found if b.skipped)  # only the serve-forever block is skipped
    result = _run(selected, tmp_path)
    assert result.returncode == 0, f"README block failed:\n{result.stdout[-8000:]}"
    assert "### all blocks ran" in result.stdout
    out = result.stdout
    assert re.search(r'"state": ?"(partially_)?succeeded"', out)  # the curl quickstart's job ended
    assert "0 failed" in out  # the conformance check of the reference endpoint
    python_out = out.split("(python)\n", 1)[1].split("###", 1)[0]
    assert python_out.startswith(("succeeded", "partially_succeeded"))  # the Python snippet's job ended
    assert (tmp_path / "clone" / "received" / "Newsletter.csv").is_file()
    assert list((tmp_path / "clone" / "deliveries").glob("*.csv"))
    assert not (REPO / "received").exists() and not (REPO / "deliveries").exists()


def test_docs_runnable_blocks_run(tmp_path):
    selected = [b for doc in sorted((REPO / "docs").glob("*.md")) for b in blocks(doc, only_runnable=True)]
    assert selected, "docs/protocol.md marks its webhook verification example runnable"
    result = _run(selected, tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "webhook signature verified" in result.stdout
