"""Fixtures for adapter tests: partner kits, started fakes, a fake clock, and a delivery helper."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from exchange.adapters.base import Adapter, SegmentContext
from exchange.adapters.driver import DeliveryReport, deliver
from exchange.adapters.registry import get_adapter
from tests.fakes.partners import CONTEXT, KITS, PartnerKit
from tests.fakes.partners.server import FakePartner


@dataclass
class FakeClock:
    """Virtual time for the driver: sleeping advances the clock instantly."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Harness:
    kit: PartnerKit
    fake: FakePartner
    session: requests.Session
    clock: FakeClock
    events: list[str] = field(default_factory=list)

    def adapter(self, settings: dict | None = None, context: SegmentContext = CONTEXT,
                cls: type[Adapter] | None = None) -> Adapter:
        cls = cls or get_adapter(self.kit.adapter_type)
        return cls(settings if settings is not None else self.kit.good_settings(self.fake), context,
                   self.session, base_url=self.kit.base_url(self.fake))

    def deliver(self, adapter: Adapter | None = None, *, adds=(), removes=(), **kwargs) -> DeliveryReport:
        kwargs.setdefault("max_attempts", 5)
        return deliver(adapter or self.adapter(), adds=adds, removes=removes, on_event=self.events.append,
                       sleep=self.clock.sleep, clock=self.clock.clock, rng=lambda: 0.5, **kwargs)

    def rows(self, start: int, stop: int) -> list[dict[str, str]]:
        return [self.kit.row(i) for i in range(start, stop)]

    def keys(self, rows: list[dict[str, str]]) -> set[str]:
        return {self.kit.key(row) for row in rows}

    def members(self, context: SegmentContext = CONTEXT) -> set[str]:
        return self.kit.members(self.fake, context)


def make_harness(name: str, **fake_options) -> Iterator[Harness]:
    kit = KITS[name]
    clock = FakeClock()
    fake = kit.make_fake(clock=clock.clock, **fake_options).start()
    session = requests.Session()
    try:
        yield Harness(kit, fake, session, clock)
    finally:
        session.close()
        fake.stop()
    assert fake.unexpected == [], f"unexpected calls to the {name} fake: {fake.unexpected}"


@pytest.fixture(params=sorted(KITS))
def harness(request) -> Iterator[Harness]:
    yield from make_harness(request.param)
