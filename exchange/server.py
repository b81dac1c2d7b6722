"""Production serving with gunicorn (threaded workers), configured from the exchange's settings."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .config import Config


class _Gunicorn(BaseApplication):
    def __init__(self, cfg: Config, options: dict):
        self._cfg = cfg
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app

        return create_app(self._cfg, start_background=True)


def run_gunicorn(cfg: Config, *, host: str, port: int, workers: int = 1, threads: int = 8) -> None:
    from .db import upgrade

    upgrade(cfg.database_url)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        # uploads and downloads stream for as long as they need; keep-alive for pollers
        "keepalive": 5,
        "accesslog": "-",
        "graceful_timeout": 30,
    }
    _Gunicorn(cfg, options).run()
