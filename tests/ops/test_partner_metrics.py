"""Partner calls are counted by adapter and result, and 429 waits in seconds (issue 18 §2), through the
real adapter driver with a scripted adapter (the one of tests/adapters/test_driver.py)."""
from __future__ import annotations

from prometheus_client import REGISTRY

from exchange.adapters.base import error_for_status
from tests.adapters.conftest import FakeClock
from tests.adapters.test_driver import Scripted, rows, run


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_partner_requests_waits_and_retries_are_counted():
    before = {r: _value("exchange_partner_requests_total", adapter="scripted", result=r)
              for r in ("ok", "rate_limited", "retry")}
    waited = _value("exchange_partner_rate_limit_wait_seconds_total", adapter="scripted")
    script = [error_for_status(429, detail="slow down", retry_after=12), error_for_status(503, detail="busy")]
    report = run(Scripted(script=script), FakeClock(), [], adds=rows(1), removes=())
    assert report.accepted == 1 and report.waited_seconds == 12 and report.retries == 1
    grew = {r: _value("exchange_partner_requests_total", adapter="scripted", result=r) - before[r] for r in before}
    assert grew["rate_limited"] == 1 and grew["retry"] == 1
    assert grew["ok"] >= 1  # the accepted batch (prepare/finish calls count as ok too)
    assert _value("exchange_partner_rate_limit_wait_seconds_total", adapter="scripted") - waited == 12
