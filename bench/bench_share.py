"""End-to-end share benchmark (SPEC §14): 1M and 10M hashed rows, both transport pairs, on loopback.

The exchange runs as in production: ``exchange serve`` (web workers, the runner process and its
job processes, which start the transform's worker processes), SQLite and the local blob store in
a fresh var dir. Around it: a PULL producer (the reference endpoint serving a generated CSV), a
sink PUSH consumer (counts rows, keeps nothing), and this process as PUSH producer (uploads the
same file with ``PUT …/data``) and as PULL consumer (downloads the delivery and acknowledges it).

For each size and pair, while the share runs, 50 pollers call ``GET /v1/jobs/{id}`` 10 times a
second each (``bench_load.Pollers``). Reported per run: rows/s end to end, seconds, the ratio to a
raw loopback copy of the same file in the same run (``curl`` download from the producer +
``curl`` upload to the sink), peak RSS of the largest exchange process (VmHWM of every process in
the ``exchange serve`` tree, sampled every 0.1 s), status p99 / errors, and the load average.

- PULL producer → PUSH consumer: from ``POST /v1/shares`` to the job's end.
- PUSH producer → PULL consumer: from the start of the upload to the consumer's acknowledgement
  (upload, transform, download).

``BENCH_FULL=0`` runs 1M rows only; ``BENCH_POLLERS=0`` measures without pollers.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PY = sys.executable
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}
POLLERS = int(os.environ.get("BENCH_POLLERS", "50"))

_SINK = r"""
import json, sys, zlib
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

def app(environ, start_response):
    req = Request(environ)
    n, d = 0, zlib.decompressobj(wbits=47) if req.headers.get("Content-Encoding") == "gzip" else None
    while True:
        chunk = req.stream.read(1 << 20)
        if not chunk:
            break
        n += (d.decompress(chunk) if d else chunk).count(b"\n")
    return Response(json.dumps({"accepted": max(0, n - 1), "rejected": 0}),
                    content_type="application/json")(environ, start_response)

server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.port, flush=True)
server.serve_forever()
"""

_PRODUCER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from exchange.toolkit.reference_endpoint import ReferenceEndpoint
ep = ReferenceEndpoint(producer_dir=sys.argv[2]).start()
print(ep.port, flush=True)
import threading; threading.Event().wait()
"""

HASHED = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
          {"source": "first_name", "target": "first_name"}, {"source": "country", "target": "country"}]


def _bench_load():
    spec = importlib.util.spec_from_file_location("bench_load", HERE / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _RssSampler:
    """Peak VmHWM of every process under ``root_pid``, sampled until stopped."""

    def __init__(self, root_pid: int):
        self.root, self.peak, self.who = root_pid, 0.0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/status") as f:
                        hwm = next((int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM")), 0.0)
                    if hwm > self.peak:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                        self.peak, self.who = hwm, _role(cmd)
                except OSError:
                    continue

    def stop(self) -> tuple[float, str]:
        self._stop.set()
        self._thread.join()
        return self.peak, self.who


def _role(cmd: str) -> str:
    if "exchange.transfer.blocks" in cmd:
        return "transform worker"
    if "multiprocessing" in cmd or "spawn_main" in cmd:
        return "job process"
    return "serve/web"


def _spawn(code: str, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([PY, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, int(proc.stdout.readline())


def _curl(path: Path, producer: int, sink: int) -> float:
    tmp = path.parent / "curl.csv"
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sS", "-o", str(tmp), f"http://127.0.0.1:{producer}/audiences/audience/data"],
                   check=True)
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "POST", "-H", "Content-Type: text/csv",
                    "--data-binary", f"@{tmp}", f"http://127.0.0.1:{sink}/audiences/x/data?mode=add"], check=True)
    took = time.perf_counter() - t0
    tmp.unlink()
    return took


class _Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict) -> dict:
        r = self.s.post(self.base + path, json=body, timeout=120)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{path}: {r.status_code} {r.text}")
        return r.json()

    def get(self, path: str, **kw) -> dict:
        r = self.s.get(self.base + path, timeout=120, **kw)
        r.raise_for_status()
        return r.json()

    def wait(self, job_id: str, states: set[str], timeout: float = 1800) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/jobs/{job_id}")
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise TimeoutError(job_id)


def _run_pair(api: _Api, ex, pair: str, setup: dict, source: Path, rows: int) -> dict:
    load = _bench_load()
    sampler = _RssSampler(ex.proc.pid)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    if pair == "pull->push":
        job_id = api.post("/v1/shares", {"audience_id": setup["pull_audience"], "destination_id": setup["sink"],
                                         "destination_audience": f"a{time.monotonic_ns()}", "mapping": HASHED,
                                         "mode": "add"})["last_job_id"]
        pollers = load.Pollers(api.base, api.token, [job_id], POLLERS) if POLLERS else None
        job = api.wait(job_id, TERMINAL)
    else:
        ext = f"b{time.monotonic_ns()}"
        with open(source, "rb") as f:
            r = requests.put(f"{api.base}/v1/endpoints/{setup['push_producer']}/audiences/{ext}/data", data=f,
                             headers={"Authorization": f"Bearer {setup['push_key']}", "Content-Type": "text/csv"},
                             timeout=1800)
        if r.status_code not in (200, 201, 202):
            raise RuntimeError(f"upload: {r.status_code} {r.text[:300]}")
        audience = next(a for a in api.get("/v1/audiences", params={"q": ext})["items"]
                        if a.get("external_id") == ext)
        job_id = api.post("/v1/shares", {"audience_id": audience["id"], "destination_id": setup["pull_consumer"],
                                         "mapping": HASHED, "mode": "add"})["last_job_id"]
        pollers = load.Pollers(api.base, api.token, [job_id], POLLERS) if POLLERS else None
        api.wait(job_id, {"awaiting_consumer"} | TERMINAL)
        consumer = requests.Session()
        consumer.headers["Authorization"] = f"Bearer {setup['pull_key']}"
        d = consumer.get(f"{api.base}/v1/deliveries", params={"state": "ready"}, timeout=60).json()["items"][0]
        lines = 0
        with consumer.get(f"{api.base}/v1/deliveries/{d['id']}/data", stream=True, timeout=600) as body:
            for chunk in body.iter_content(1 << 20):
                lines += chunk.count(b"\n")
        consumer.post(f"{api.base}/v1/deliveries/{d['id']}/ack", json={"accepted": lines - 1, "rejected": 0},
                      timeout=60).raise_for_status()
        job = api.wait(job_id, TERMINAL)
    wall = time.perf_counter() - t0
    if pollers is not None:
        pollers.stop()
    phases = _phases(api, job_id)
    peak, who = sampler.stop()
    return {"wall": wall, "state": job["state"], "counts": job.get("counts", {}), "rss": peak, "who": who,
            "pickup": _pickup(api, job_id),
            "p99": pollers.p99_ms() if pollers else float("nan"), "errors": len(pollers.errors) if pollers else 0,
            "calls": len(pollers.latencies) if pollers else 0, "phases": phases,
            "load": (load_before, os.getloadavg()[0])}


def _pickup(api: _Api, job_id: str) -> float:
    """Seconds from the job's ``queued`` event to its ``fetching`` event (how long it waited for a worker)."""
    from datetime import datetime

    at = {e["state"]: datetime.fromisoformat(e["at"]) for e in reversed(api.get(f"/v1/jobs/{job_id}/events")["items"])
          if e.get("kind") == "state"}
    return (at["fetching"] - at["queued"]).total_seconds() if {"queued", "fetching"} <= at.keys() else float("nan")


# a PULL source is transformed while it downloads: "fetch" then holds most of the transform too, and
# "rest" is what the transform did after the last byte arrived ("fetched N bytes; transforming the rest")
_PHASES = (("queued", "pickup"), ("fetching", "fetch"), ("fetched", "rest"), ("mapping", "transform"),
           ("plan", "plan"), ("delivering", "deliver"), ("succeeded", None))


def _phases(api: _Api, job_id: str) -> str:
    """Seconds between the job's state events: where the end-to-end time went."""
    from datetime import datetime

    items = api.get(f"/v1/jobs/{job_id}/events").get("items", [])
    marks: dict[str, datetime] = {}
    for e in items:
        for prefix, _ in _PHASES:
            if (e.get("message") or "").startswith(prefix) and prefix not in marks:
                marks[prefix] = datetime.fromisoformat(e["at"])
    out, prev = [], None
    for prefix, name in _PHASES:
        if prefix not in marks:
            continue
        if prev is not None:
            out.append(f"{prev[1]} {(marks[prefix] - prev[0]).total_seconds():.2f}")
        prev = (marks[prefix], name)
    return ", ".join(out)


def _wait_for_job_workers(var: Path, timeout: float = 30.0) -> int:
    """Measure a running service, not its boot: wait until the job processes have started and bound
    their wake sockets (``exchange.jobs.wakeup``), i.e. until their number holds still for 1 s."""
    sys.path.insert(0, str(ROOT))
    from exchange.jobs.wakeup import SUFFIX, wake_dir

    folder, seen, since = wake_dir(var), -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(list(folder.glob(f"*{SUFFIX}"))) if folder.is_dir() else 0
        if n != seen:
            seen, since = n, time.monotonic()
        elif n and time.monotonic() - since >= 1.0:
            break
        time.sleep(0.1)
    return seen


def _measure(sizes: list[int]) -> list[dict]:
    sys.path.insert(0, str(ROOT / "sample_data"))
    from generate import generate_rows

    load = _bench_load()
    results: list[dict] = []
    rss: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        work = Path(tmp)
        (work / "producer").mkdir()
        prod = sink = None
        ex = load._Exchange(work / "var")
        try:
            source = work / "producer" / "audience.csv"
            generate_rows(source, sizes[0])
            prod, pport = _spawn(_PRODUCER, str(ROOT), str(work / "producer"))
            sink, sport = _spawn(_SINK)
            ex.cli("db", "upgrade")
            token = json.loads(ex.cli("accounts", "create", "bench", "--json").strip().splitlines()[-1])["api_key"]
            ex.start()
            _wait_for_job_workers(ex.var)
            api = _Api(f"http://127.0.0.1:{ex.port}", token)
            attrs = ["first_name", "country"]
            pull_p = api.post("/v1/endpoints", {"name": "P-pull", "contact_url": f"http://127.0.0.1:{pport}",
                                       "producer": {"transport": "pull"}, "identifiers": ["email"],
                                       "attributes": attrs})
            push_p = api.post("/v1/endpoints", {"name": "P-push", "producer": {"transport": "push"},
                                                "identifiers": ["email"], "attributes": attrs})
            sink_c = api.post("/v1/endpoints", {"name": "Sink", "contact_url": f"http://127.0.0.1:{sport}",
                                                "identifiers": ["email_sha256"], "attributes": attrs,
                                                "consumer": {"transport": "push", "max_rows_per_request": 250_000,
                                                             "gzip": False}})
            pull_c = api.post("/v1/endpoints", {"name": "Warehouse", "identifiers": ["email_sha256"],
                                                "attributes": attrs, "consumer": {"transport": "pull"}})
            setup = {"sink": sink_c["id"], "push_producer": push_p["id"], "push_key": push_p["endpoint_key"],
                     "pull_consumer": pull_c["id"], "pull_key": pull_c["endpoint_key"]}
            setup["pull_audience"] = next(a["id"] for a in api.get("/v1/audiences")["items"]
                                          if a.get("endpoint_id") == pull_p["id"])
            for size in sizes:
                if size != sizes[0]:
                    generate_rows(source, size)  # the producer serves it with a new ETag
                curl = min(_curl(source, pport, sport) for _ in range(2))
                label = f"{size // 1_000_000}M"
                for pair in ("pull->push", "push->pull"):
                    r = _run_pair(api, ex, pair, setup, source, size)
                    name = f"share {label} hashed {pair}"
                    rss[(pair, size)] = r["rss"]
                    results += [
                        {"benchmark": name, "metric": "rows/s end to end", "value": round(size / r["wall"]),
                         "unit": "rows/s", "target": ">= 500,000 (stretch 1M)"},
                        {"benchmark": name, "metric": "seconds", "value": round(r["wall"], 2), "unit": "s",
                         "target": f"state {r['state']}, valid {r['counts'].get('valid')}; {r['phases']}"},
                        {"benchmark": name, "metric": "ratio to raw copy", "value": round(r["wall"] / curl, 2),
                         "unit": "x", "target": f"curl download+upload {curl:.2f}s, same run"},
                        {"benchmark": name, "metric": "peak RSS (largest process)", "value": round(r["rss"], 1),
                         "unit": "MB", "target": f"<= 300 ({r['who']})"},
                        {"benchmark": name, "metric": f"status p99, {POLLERS} pollers", "value": round(r["p99"], 2),
                         "unit": "ms", "target": f"<= 25; {r['calls']} calls, {r['errors']} errors"},
                        {"benchmark": name, "metric": "queued -> fetching", "value": round(r["pickup"], 3),
                         "unit": "s", "target": "<= 0.2 (job events)"},
                        {"benchmark": name, "metric": "load average 1 min", "value": round(r["load"][1], 2),
                         "unit": "", "target": f"before {r['load'][0]:.2f} (2 cores, shared)"},
                    ]
        finally:
            ex.stop()
            for proc in (prod, sink):
                if proc is not None:
                    proc.kill()
    for pair in ("pull->push", "push->pull"):
        if (pair, 10_000_000) in rss and (pair, 1_000_000) in rss:
            results.append({"benchmark": f"share 10M/1M {pair}", "metric": "peak RSS ratio",
                            "value": round(rss[(pair, 10_000_000)] / rss[(pair, 1_000_000)], 2), "unit": "x",
                            "target": "<= 1.2"})
    return results


def run() -> list[dict]:
    sizes = [1_000_000] + ([10_000_000] if os.environ.get("BENCH_FULL", "1") != "0" else [])
    return _measure(sizes)


if __name__ == "__main__":
    for row in run():
        print(row)
