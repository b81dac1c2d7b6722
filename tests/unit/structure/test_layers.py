"""Data flows one way: every import points down the layers, and inside the job engine down the chain
executor → runner → phases → delivery → the engine's own helpers. A module that needs something
above it is a design error: move the shared piece lower, or pass it in."""
from __future__ import annotations

from tests.unit.structure.test_import_cycles import import_graph

# exchange.<top-level name> → layer (0 = top). Everything a new top-level module may be is listed.
LAYERS = {
    # entry points and the HTTP side
    "api": 0, "web": 0, "app": 0, "cli": 0, "server": 0, "serving": 0, "demo": 0, "openapi": 0,
    "toolkit": 0, "docgen": 0, "health": 0, "demo_apps": 0, "openapi_stable": 0,
    # the composition root (below it, modules name Runtime only under TYPE_CHECKING)
    "runtime": 1,
    # services
    "shares": 2, "catalog": 2, "auth": 2, "applications": 2,
    # the job engine and the webhook outbox it writes
    "jobs": 3, "webhooks": 3,
    # formats, transport, storage, partners
    "transfer": 4, "net": 4, "adapters": 4, "blobs": 4, "endpoint_client": 4, "secrets": 4,
    # shared by every layer
    "models": 5, "errors": 5, "metrics": 5, "identifiers": 5, "pagination": 5, "db": 5, "config": 5,
    "schemas": 5, "logging_setup": 5, "migrations": 5,
}
# The job engine's chain, top first: a module may import only modules after it.
ENGINE = [
    "executor", "celery_executor", "runner", "phases",
    "delivery.push", "delivery.pull", "delivery.adapter", "delivery.acks", "delivery.finish", "delivery",
    "retention", "context", "destination", "leases", "budget", "sweep", "failover", "states", "observe",
    "progress", "wakeup",
]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    unplaced = sorted({m.split(".")[1] for m in import_graph() if "." in m and _layer(m) is None})
    assert unplaced == [], f"place these in LAYERS (and in docs/architecture.md): {unplaced}"


def test_imports_point_down_the_layers():
    upward = []
    for module, deps in import_graph().items():
        here = _layer(module)
        upward += [f"{module} → {d}" for d in deps if here is not None and (_layer(d) or 0) < here
                   and _layer(d) is not None]
    assert upward == []


def test_the_engine_is_one_way():
    graph = import_graph()
    rank = {f"exchange.jobs.{name}": i for i, name in enumerate(ENGINE)}
    modules = {m for m in graph if m.startswith("exchange.jobs.") and m != "exchange.jobs"}
    assert modules <= set(rank), f"place these in ENGINE: {sorted(modules - set(rank))}"
    backwards = [f"{m} → {d}" for m in modules for d in graph[m] if d in rank and rank[d] <= rank[m]]
    assert backwards == []
