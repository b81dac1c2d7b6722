"""``exchange-toolkit conformance``: call an endpoint the way the exchange would and check each rule.

The rules are those of ``docs/protocol.md`` (machine-readable: ``openapi/endpoint.json``). Each check
produces one :class:`Result` naming its rule, ``pass`` / ``fail`` / ``warn`` / ``skip`` and why; any
``fail`` means the exchange would misbehave with this endpoint (a job failing, retrying forever or
delivering the wrong members). ``warn`` marks what works but loses a feature (no ETag: no 304).

The producer checks only read. The consumer checks write to a scratch destination audience
(``conformance-<random>`` unless ``destination_audience`` is given) and empty it at the end with a
header-only ``replace``: point the checker at a test account of the consumer, not at production.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from urllib.parse import quote

import requests

from exchange.toolkit.conformance_consumer import consumer_checks
from exchange.toolkit.conformance_producer import producer_checks
from exchange.toolkit.conformance_rules import (
    MAX_SAMPLE_BYTES,
    ROLES,
    USER_AGENT,
    Result,
    _fail,
    _ok,
    _skip,
    _warn,
    check_csv,
    csv_body,
    decode_body,
    member_rows,
    read_sample,
    results_json,
    wait_ready,
)

__all__ = [
    "Checker",
    "MAX_SAMPLE_BYTES",
    "ROLES",
    "Result",
    "USER_AGENT",
    "check_csv",
    "csv_body",
    "decode_body",
    "member_rows",
    "read_sample",
    "results_json",
    "wait_ready",
]


class Checker:
    """Runs the rules against one endpoint; ``run()`` yields results as they are found."""

    def __init__(self, url: str, credential: str | None, *, roles: Iterable[str] | None = None,
                 audience: str | None = None, destination_audience: str | None = None,
                 identifier: str = "email_sha256", gzip: bool = False, wait: float = 30.0,
                 timeout: float = 30.0, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.credential = credential
        self.roles = tuple(roles) if roles else None
        self.audience = audience
        self.destination = destination_audience or f"conformance-{secrets.token_hex(4)}"
        self.identifier = identifier
        self.gzip = gzip
        self.wait = wait
        self.timeout = (min(5.0, timeout), timeout)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    # --- HTTP helpers ---------------------------------------------------------------------
    def headers(self, *, credential: str | None = "registered", **extra: str) -> dict[str, str]:
        h = {"X-Request-Id": secrets.token_hex(16)}
        token = self.credential if credential == "registered" else credential
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update({k.replace("_", "-"): v for k, v in extra.items()})
        return h

    def call(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        kw.setdefault("allow_redirects", False)
        return self.session.request(method, self.url + path, **kw)

    # --- orchestration ------------------------------------------------------------------
    def run(self) -> Iterator[Result]:
        roles = self.roles
        if roles is None:
            roles, found = self._detect_roles()
            yield found
        if not roles:
            return
        for role in roles:
            try:
                yield from self._auth_checks(role)
                yield from (producer_checks(self) if role == "producer" else consumer_checks(self))
            except requests.RequestException as exc:
                yield _fail(f"{role}.reachable", f"the call failed: {type(exc).__name__}: {exc}"[:300])

    def _detect_roles(self) -> tuple[tuple[str, ...], Result]:
        roles = []
        try:
            if self.call("GET", "/audiences", headers=self.headers()).status_code not in (404, 405, 501):
                roles.append("producer")
            probe = self.call("POST", f"/audiences/{quote(self.destination, safe='')}/data",
                              params={"mode": "conformance-probe"}, data=b"",
                              headers=self.headers(Content_Type="text/csv", X_Exchange_Part="1/1"))
            if probe.status_code not in (404, 405, 501):
                roles.append("consumer")
        except requests.RequestException as exc:
            return (), _fail("endpoint.reachable", f"{self.url} cannot be reached: {type(exc).__name__}")
        if not roles:
            return (), _fail("endpoint.roles", "neither GET /audiences nor POST /audiences/{id}/data is served "
                                               "(404/405); pass --role to say which role to check")
        return tuple(roles), _ok("endpoint.roles", f"detected role(s): {', '.join(roles)} (use --role to choose)")

    def _auth_checks(self, role: str) -> Iterator[Result]:
        """Missing and wrong credentials must be refused with 401/403, the right one accepted."""
        if role == "producer":
            def probe(cred):
                return self.call("GET", "/audiences", headers=self.headers(credential=cred))
        else:
            path = f"/audiences/{quote(self.destination, safe='')}/data"

            def probe(cred):  # an invalid mode: even a consumer that skips auth changes nothing
                return self.call("POST", path, params={"mode": "conformance-probe"}, data=b"",
                                 headers=self.headers(credential=cred, Content_Type="text/csv",
                                                      X_Exchange_Part="1/1"))
        try:
            if not self.credential:
                yield _skip(f"{role}.auth.required", "no --credential given: the endpoint is checked without one")
            else:
                for rule, cred, what in ((f"{role}.auth.missing", None, "without Authorization"),
                                         (f"{role}.auth.wrong", "wrong-" + secrets.token_hex(8),
                                          "with a wrong bearer")):
                    resp = probe(cred)
                    if resp.status_code in (401, 403):
                        yield _ok(rule, f"{what}: answered {resp.status_code}")
                        if resp.status_code == 401 and rule.endswith("auth.missing"):
                            yield (_ok if resp.headers.get("WWW-Authenticate") else _warn)(
                                f"{role}.auth.challenge", "401 carries WWW-Authenticate" if resp.headers.get(
                                    "WWW-Authenticate") else "401 without WWW-Authenticate (RFC 9110 §11.6.1)")
                    else:
                        yield _fail(rule, f"{what}: answered {resp.status_code}, expected 401 or 403 — "
                                          "anyone could call this endpoint")
            resp = probe("registered")
            if resp.status_code in (401, 403):
                yield _fail(f"{role}.auth.accepted", f"the given credential was refused ({resp.status_code}); "
                                             "the exchange would stop every job with 'invalid credentials'")
            else:
                yield _ok(f"{role}.auth.accepted", f"the credential is accepted (answered {resp.status_code})")
        except requests.RequestException as exc:
            yield _fail("endpoint.reachable", f"{self.url} cannot be reached: {type(exc).__name__}")


# --- helpers shared by the role checks ------------------------------------------------------
