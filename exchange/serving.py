"""What ``exchange serve`` and ``exchange worker`` set up around the app: metrics aggregation across
processes and per-instance paths. Kept out of ``server.py`` so the process model stays readable.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .config import Config

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(cfg: Config, port: int) -> Path:
    """Where this ``exchange serve`` keeps its processes' metric files.

    ``PROMETHEUS_MULTIPROC_DIR`` when the operator sets it (one per ``exchange serve``!), else
    ``EXCHANGE_VAR_DIR/metrics/<port>``: two ``exchange serve`` on one host listen on different ports,
    so they never mix their counters."""
    given = os.environ.get(MULTIPROC_ENV)
    return Path(given) if given else (Path(cfg.var_dir) / "metrics" / str(port)).resolve()


def prepare_metrics(cfg: Config, port: int) -> Path:
    """Empty the metric files of a previous run and export the folder to every child process.

    Counters restart from zero with the process group, as Prometheus expects of a restart."""
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_ENV):
        log.warning("prometheus_client was imported before the metrics folder was set: "
                    "this process's own figures will not be aggregated")
    path = metrics_dir(cfg, port)
    path.mkdir(parents=True, exist_ok=True)
    for item in path.glob("*.db"):
        item.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def worker_exited(pid: int | None) -> None:
    """A gunicorn worker or the runner is gone: its live gauges stop counting (counters stay summed)."""
    if pid is None or not os.environ.get(MULTIPROC_ENV):
        return
    try:
        from .metrics import process_exited

        process_exited(pid)
    except Exception:  # noqa: BLE001 - never block a shutdown over metrics
        log.debug("could not mark process %s dead for metrics", pid, exc_info=True)


def control_socket_path(cfg: Config, port: int) -> str:
    path = (Path(cfg.var_dir) / "run").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path / f"gunicorn-{port}.ctl")


def standalone_metrics() -> None:
    """``exchange worker``: its figures live in its own process (a folder of another process group's
    files would be summed into a scrape it does not serve)."""
    os.environ.pop(MULTIPROC_ENV, None)
