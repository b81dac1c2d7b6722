"""``make bench``: run every ``bench/bench_*.py`` module's ``run()`` and print one comparable table.

Each module returns rows ``{"benchmark", "metric", "value", "unit", "target"}``. The table is also
written as JSON to ``bench/out/latest.json`` so runs can be compared over time. Select modules with
``python bench/run.py share delta`` (names without the ``bench_`` prefix).
"""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    wanted = set(argv)
    rows: list[dict] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        started = time.perf_counter()
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            rows.extend(_load(path).run())
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            rows.append({"benchmark": name, "metric": "error", "value": float("nan"), "unit": "",
                         "target": f"{type(exc).__name__}: {exc}"})
        print(f"  {name} took {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    width = max((len(r["benchmark"]) for r in rows), default=10)
    mwidth = max((len(r["metric"]) for r in rows), default=10)
    print(f"{'benchmark':<{width}}  {'metric':<{mwidth}}  {'value':>14}  {'unit':<10}  target")
    print("-" * (width + mwidth + 48))
    for r in rows:
        value = r["value"]
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        print(f"{r['benchmark']:<{width}}  {r['metric']:<{mwidth}}  {shown:>14}  {r['unit']:<10}  {r['target']}")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"at": time.time(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
