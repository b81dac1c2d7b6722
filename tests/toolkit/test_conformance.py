"""``exchange-toolkit conformance``: the reference endpoint passes; each endpoint that breaks one rule
of docs/protocol.md fails exactly that rule (and the command exits 1 naming it)."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.wrappers import Request, Response

from exchange.errors import BadRequest, ExchangeError, NotFound
from exchange.toolkit.cli import main
from exchange.toolkit.conformance import Checker, check_csv
from exchange.toolkit.reference_endpoint import ReferenceApp, ReferenceEndpoint

TOKEN = "s3cret-token"
CSV = "email,first_name,country\n" + "".join(f"user{i}@example.com,U{i},FR\n" for i in range(50))


def _without(request: Request, header: str) -> None:
    request.environ.pop("HTTP_" + header.upper().replace("-", "_"), None)


class NoAuth(ReferenceApp):  # anyone may call it
    def _authorize(self, request):
        return None


class PresenceOnlyAuth(ReferenceApp):  # any bearer goes
    def _authorize(self, request):
        if not request.headers.get("Authorization"):
            super()._authorize(request)


class RefusesCredential(ReferenceApp):  # the registered credential is refused
    def _authorize(self, request):
        request.environ["HTTP_AUTHORIZATION"] = "Bearer nope"
        super()._authorize(request)


class BinaryData(ReferenceApp):  # the data is not CSV
    def on_get_data(self, request, audience_id):
        super().on_get_data(request, audience_id)
        return Response(b"PK\x03\x04\x00\x00binary zip", mimetype="text/csv")


class RaggedHeaderless(ReferenceApp):  # the header does not name the listed identifiers
    def on_get_data(self, request, audience_id):
        super().on_get_data(request, audience_id)
        return Response("1,2,3\n4,5,6\n", mimetype="text/csv")


class GzipWithoutHeader(ReferenceApp):  # gzip bytes, Content-Encoding missing
    def on_get_data(self, request, audience_id):
        super().on_get_data(request, audience_id)
        return Response(gzip.compress(CSV.encode()), mimetype="text/csv")


class AcceptedNoRetryAfter(ReferenceApp):  # 202 without Retry-After, forever
    def on_get_data(self, request, audience_id):
        super().on_get_data(request, audience_id)
        return Response(b"{}", status=202, mimetype="application/json")


class UnknownIs200(ReferenceApp):  # an unknown audience answers 200 and an empty body
    def on_get_data(self, request, audience_id):
        try:
            return super().on_get_data(request, audience_id)
        except NotFound:
            return Response(b"", mimetype="text/csv")


class RangeClaimedIgnored(ReferenceApp):  # Accept-Ranges: bytes, but Range is ignored
    def on_get_data(self, request, audience_id):
        _without(request, "Range")
        return super().on_get_data(request, audience_id)


class BadListing(ReferenceApp):  # an audience without an id
    def on_audiences(self, request):
        return Response('{"audiences": [{"name": "no id"}]}', mimetype="application/json")


class IgnoresIdempotencyKey(ReferenceApp):
    def on_post_data(self, request, audience_id):
        _without(request, "Idempotency-Key")
        return super().on_post_data(request, audience_id)


class IgnoresParts(ReferenceApp):  # every part is a whole request
    def on_post_data(self, request, audience_id):
        _without(request, "X-Exchange-Part")
        return super().on_post_data(request, audience_id)


class BadInputIs500(ReferenceApp):  # bad CSV from the exchange answered 500 (retried forever)
    def on_post_data(self, request, audience_id):
        try:
            return super().on_post_data(request, audience_id)
        except BadRequest as exc:
            raise ExchangeError(exc.detail, status=500) from exc


class AcceptsAnyMode(ReferenceApp):  # mode=bogus is treated as add
    def on_post_data(self, request, audience_id):
        if request.args.get("mode") not in ("add", "replace", "remove"):
            request.query_string = b"mode=add"
            request.__dict__.pop("args", None)
        return super().on_post_data(request, audience_id)


class NotJsonAnswer(ReferenceApp):  # 200 without the {accepted, rejected} body
    def on_post_data(self, request, audience_id):
        response = super().on_post_data(request, audience_id)
        return Response("ok", mimetype="text/plain") if response.status_code == 200 else response


def _serve(tmp_path: Path, app_class: type[ReferenceApp]) -> ReferenceEndpoint:
    producer = tmp_path / "producer"
    producer.mkdir(exist_ok=True)
    (producer / "loyal.csv").write_text(CSV)
    ep = ReferenceEndpoint(producer, tmp_path / "consumer", credential=TOKEN)
    ep.app = app_class(producer, tmp_path / "consumer", TOKEN)
    return ep.start()


def _failed(url: str, roles: tuple[str, ...], **kw) -> dict[str, str]:
    results = list(Checker(url, TOKEN, roles=roles, wait=0.5, **kw).run())
    return {r.rule: r.detail for r in results if r.status == "fail"}


def test_reference_endpoint_passes_every_rule(tmp_path):
    ep = _serve(tmp_path, ReferenceApp)
    try:
        results = list(Checker(ep.url, TOKEN).run())  # roles detected
        by_rule = {r.rule: r.status for r in results}
        assert [r for r in results if r.status == "fail"] == []
        assert by_rule["endpoint.roles"] == "pass"
        for rule in ("producer.data.csv", "producer.data.range", "producer.data.if-none-match",
                     "consumer.idempotency", "consumer.parts.order", "consumer.reject.csv", "consumer.push.add"):
            assert by_rule[rule] == "pass", rule
        result = CliRunner().invoke(main, ["conformance", ep.url, "--credential", TOKEN])
        assert result.exit_code == 0, result.output
        assert "0 failed" in result.output and "conforming" in result.output
        # the scratch audience was emptied at the end
        scratch = [p for p in (tmp_path / "consumer").glob("conformance-*.csv") if "order" not in p.name]
        assert scratch and all(p.read_text().strip() == "email_sha256" for p in scratch)
    finally:
        ep.stop()


BROKEN: list[tuple[type[ReferenceApp], tuple[str, ...], set[str]]] = [
    (NoAuth, ("producer",), {"producer.auth.missing", "producer.auth.wrong"}),
    (NoAuth, ("consumer",), {"consumer.auth.missing", "consumer.auth.wrong"}),
    (PresenceOnlyAuth, ("producer",), {"producer.auth.wrong"}),
    (RefusesCredential, ("producer",), {"producer.auth.accepted", "producer.list.status"}),
    (BadListing, ("producer",), {"producer.list.json"}),
    (BinaryData, ("producer",), {"producer.data.csv"}),
    (RaggedHeaderless, ("producer",), {"producer.data.csv"}),
    (GzipWithoutHeader, ("producer",), {"producer.data.encoding"}),
    (AcceptedNoRetryAfter, ("producer",), {"producer.data.retry-after", "producer.data.status"}),
    (UnknownIs200, ("producer",), {"producer.data.unknown"}),
    (RangeClaimedIgnored, ("producer",), {"producer.data.range"}),
    (IgnoresIdempotencyKey, ("consumer",), {"consumer.idempotency"}),
    (IgnoresParts, ("consumer",), {"consumer.parts.order", "consumer.reject.part"}),
    (BadInputIs500, ("consumer",), {"consumer.reject.mode", "consumer.reject.csv", "consumer.reject.header",
                                    "consumer.reject.part"}),
    (AcceptsAnyMode, ("consumer",), {"consumer.reject.mode"}),
    (NotJsonAnswer, ("consumer",), {"consumer.push.add"}),
]


@pytest.mark.parametrize(("app_class", "roles", "rules"), BROKEN,
                         ids=[f"{c.__name__}-{r[0]}" for c, r, _ in BROKEN])
def test_each_broken_endpoint_fails_its_rule(tmp_path, app_class, roles, rules):
    ep = _serve(tmp_path, app_class)
    try:
        assert set(_failed(ep.url, roles)) == rules
    finally:
        ep.stop()


def test_cli_names_the_failed_rule_and_exits_1(tmp_path):
    ep = _serve(tmp_path, IgnoresIdempotencyKey)
    try:
        result = CliRunner().invoke(main, ["conformance", ep.url, "--credential", TOKEN, "--role", "consumer"])
        assert result.exit_code == 1
        line = next(x for x in result.output.splitlines() if x.startswith("FAIL"))
        assert "consumer.idempotency" in line and "applied again" in line
        assert "NOT conforming" in result.output
        as_json = CliRunner().invoke(main, ["--json", "conformance", ep.url, "--credential", TOKEN,
                                            "--role", "consumer"])
        assert as_json.exit_code == 1 and '"rule": "consumer.idempotency"' in as_json.output
    finally:
        ep.stop()


def test_unreachable_endpoint_fails(tmp_path):
    failed = _failed("http://127.0.0.1:9", ("producer",))
    assert "endpoint.reachable" in failed or "producer.reachable" in failed


@pytest.mark.parametrize(("body", "status"), [
    (b"email\na@example.com\n", "pass"),
    (b"email,country\na@example.com,FR,extra\n", "warn"),  # one row rejected, not the job
    (b"email\n\xff\xfe\n", "warn"),
    (b"\xff\xfe,email\n", "fail"),
    (b"", "fail"),
    (b"email,email\nx,y\n", "fail"),
    (b"a\x00b\n", "fail"),
])
def test_csv_rule_matches_the_exchange_reader(body, status):
    assert check_csv(body, True, ["email"])[0] == status
