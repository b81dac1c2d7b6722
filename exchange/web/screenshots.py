"""Screenshots of the main pages: ``python -m exchange.web.screenshots docs/screenshots`` (``make screenshots``).

Sets the demo up in a temporary folder (:func:`exchange.demo.run_demo`: a CRM over ``sample_data/crm``,
an ad platform, shares and a finished job), serves the exchange on a loopback port, signs in with
the demo user in headless Chromium and saves full-page PNGs at 1280 px, plus a few at a phone's
390 px. Nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .headless import DESKTOP, PHONE, LiveServer, chromium_missing, launch, sign_in

# (file name, path, viewport, preparation before the shot)
Shot = tuple[str, str, dict, Callable[[Any], None] | None]


def _wizard_cron(page: Any) -> None:
    page.get_by_label("Recurring, on a calendar (cron)").check()
    page.get_by_label("Cron expression").fill("0 6 * * 1-5")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.locator("#schedule-preview li").first.wait_for()
    page.locator("#schedule-preview").get_by_text("weekday").wait_for()


def _shots(ids: dict[str, str]) -> list[Shot]:
    wizard = f"/shares/new?audience={ids['audience']}&destination={ids['ads']}"
    return [
        ("dashboard.png", "/", DESKTOP, None),
        ("endpoints.png", "/endpoints", DESKTOP, None),
        ("endpoint-register.png", "/endpoints/new", DESKTOP, None),
        ("catalog.png", "/audiences", DESKTOP, None),
        ("audience.png", f"/audiences/{ids['audience']}", DESKTOP, None),
        ("wizard.png", wizard, DESKTOP, _wizard_cron),
        ("shares.png", "/shares", DESKTOP, None),
        ("job.png", f"/jobs/{ids['job']}", DESKTOP, None),
        ("phone-catalog.png", "/audiences", PHONE, None),
        ("phone-job.png", f"/jobs/{ids['job']}", PHONE, None),
    ]


def _prepare_demo(workdir: Path):
    """Run the demo set-up once (it stops its own servers) and return its config and ids."""
    from ..catalog.audiences import search
    from ..config import Config
    from ..demo import run_demo
    from ..runtime import Runtime

    config = Config.from_env({}, var_dir=workdir / "var", secret_key=secrets.token_urlsafe(32),
                             scheduler=False, workers=2, allow_private_urls=True, log_level="WARNING")
    info = run_demo(config, serve=False, out=lambda _line: None)
    rt = Runtime(config)
    try:
        with rt.db.session() as s:
            audiences, _ = search(s, info.account_id, q="loyal")
        ids = {"audience": audiences[0].id, "ads": info.endpoint_ids["ads"],
               "job": info.jobs["ads_now"]["id"]}
    finally:
        rt.shutdown()
    return config, info, ids


def capture(out_dir: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Write the screenshots into ``out_dir``; returns the files written."""
    from playwright.sync_api import sync_playwright

    from ..app import create_app
    from ..runtime import Runtime

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="exchange-shots-") as tmp:
        config, info, ids = _prepare_demo(Path(tmp))
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        rt = Runtime(config)
        server = LiveServer(create_app(runtime=rt)).start()
        try:
            with sync_playwright() as pw:
                browser = launch(pw)
                context = browser.new_context(viewport=DESKTOP, device_scale_factor=1)
                page = context.new_page()
                page.goto(f"{server.url}/login")
                page.get_by_label("Email").fill(info.email)
                written.append(out_dir / "login.png")
                page.screenshot(path=str(written[-1]), full_page=True)
                sign_in(page, server.url, info.email, info.password)
                for name, path, viewport, prepare in _shots(ids):
                    page.set_viewport_size(viewport)
                    page.goto(server.url + path)
                    page.wait_for_load_state("networkidle")
                    if prepare:
                        prepare(page)
                    target = out_dir / name
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)
                    log(f"saved {target}")
                browser.close()
        finally:
            server.stop()
            rt.shutdown()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="docs/screenshots", type=Path)
    args = parser.parse_args(argv)
    reason = chromium_missing()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    capture(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
