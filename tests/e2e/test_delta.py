"""Delta syncs through real jobs: only changes are sent, failures are redone, replace without native replace."""
from __future__ import annotations

from tests.e2e.conftest import audience_by_external, read_rows, register, sha, wait_job
from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]


def _csv(members: dict[str, str]) -> bytes:
    return ("email,country\n" + "".join(f"{e},{c}\n" for e, c in members.items())).encode()


def _expected(members: dict[str, str]) -> dict[str, str]:
    return {sha(e): c for e, c in members.items()}


def _setup(api, tmp_path):
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct").start()
    p = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"], attributes=["country"])
    c = register(api, name="Ads", contact_url=cons.url, identifiers=["email_sha256"], attributes=["country"],
                 credential="ct", consumer={"transport": "push", "replace": False, "max_rows_per_request": 1000})

    def upload(members):
        r = api.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=_csv(members),
                           headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
        assert r.status_code == 200
    return cons, p, c, upload


def _holds(cons) -> dict[str, str]:
    return {r["email_sha256"]: r["country"] for r in read_rows(cons.consumer_file("D"))}


def _run(api, share_id) -> dict:
    job = api.post(f"/v1/shares/{share_id}/run").json
    return wait_job(api, job["id"])


def test_delta_sends_only_changes_and_recovers_from_failure(live, tmp_path):
    cons, p, c, upload = _setup(live, tmp_path)
    with cons:
        v1 = {"a@x.io": "FR", "b@x.io": "DE", "c@x.io": "US"}
        upload(v1)
        share = live.post("/v1/shares", json={
            "audience_id": audience_by_external(live, "a")["id"], "destination_id": c["id"],
            "destination_audience": "D", "mapping": MAPPING, "mode": "replace",
            "schedule": {"type": "interval", "every": "PT1H"}, "delta": True}).json
        first = _run(live, share["id"])
        assert first["state"] == "succeeded" and first["counts"]["added"] == 3
        assert _holds(cons) == _expected(v1)
        assert [r.query["mode"] for r in cons.requests_to("POST")] == ["add"]  # no native replace

        v2 = {"a@x.io": "FR", "c@x.io": "GB", "d@x.io": "IT"}  # b removed, c changed, d added
        upload(v2)
        cons.clear_requests()
        second = _run(live, share["id"])
        assert second["state"] == "succeeded", second
        assert (second["counts"]["added"], second["counts"]["removed"]) == (2, 1)
        assert second["snapshot_base_job_id"] == first["id"]
        posts = cons.requests_to("POST")
        assert [r.query["mode"] for r in posts] == ["add", "remove"]
        assert sorted(posts[0].text.splitlines()[1:]) == sorted([f"{sha('c@x.io')},GB", f"{sha('d@x.io')},IT"])
        assert posts[1].text.splitlines()[1:] == [sha("b@x.io")]
        assert _holds(cons) == _expected(v2)

        # v3: the remove part fails permanently; the snapshot keeps the last success as base
        v3 = {"a@x.io": "FR", "d@x.io": "IT", "e@x.io": "ES"}  # c removed, e added
        upload(v3)
        cons.script("POST", "/audiences/D/data", [None, Fault(status=400)])
        third = _run(live, share["id"])
        assert third["state"] == "failed"
        assert sha("c@x.io") in _holds(cons)  # the remove never happened

        cons.clear_requests()
        fourth = _run(live, share["id"])
        assert fourth["state"] == "succeeded", fourth
        assert _holds(cons) == _expected(v3)  # the missed change was redone
        assert fourth["snapshot_base_job_id"] == second["id"]

        # nothing changed: nothing but an empty delta is sent
        cons.clear_requests()
        fifth = _run(live, share["id"])
        assert fifth["state"] == "succeeded" and fifth["counts"]["added"] == 0 and fifth["counts"]["removed"] == 0
        assert cons.requests_to("POST") == []
        assert _holds(cons) == _expected(v3)


def test_full_add_without_delta_resends_everything(live, tmp_path):
    cons, p, c, upload = _setup(live, tmp_path)
    with cons:
        upload({"a@x.io": "FR", "b@x.io": "DE"})
        share = live.post("/v1/shares", json={
            "audience_id": audience_by_external(live, "a")["id"], "destination_id": c["id"],
            "destination_audience": "D", "mapping": MAPPING, "mode": "add", "delta": False}).json
        wait_job(live, share["last_job_id"])
        second = _run(live, share["id"])
        assert second["counts"]["added"] == 2 and second["snapshot_base_job_id"] is None
        assert len(cons.requests_to("POST")) == 2
