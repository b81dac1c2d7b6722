"""Catalog: gathering from PULL producers, gone audiences, PUSH metadata, search filters."""
from __future__ import annotations

from exchange.toolkit.reference_endpoint import ReferenceEndpoint


def _producer(api, folder, credential="tok"):
    ref = ReferenceEndpoint(producer_dir=folder, credential=credential).start()
    ep = api.post("/v1/endpoints", json={"name": "CRM", "contact_url": ref.url, "producer": {"transport": "pull"},
                                         "identifiers": ["email"], "credential": credential}).json
    return ref, ep


def test_gather_refresh_and_gone(api, tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "vip.csv").write_text("email,country\na@example.com,FR\nb@example.com,DE\n")
    (folder / "vip.json").write_text('{"name": "VIP buyers", "description": "Spent over 1000", "tags": ["vip"]}')
    (folder / "lapsed.csv").write_text("email\nc@example.com\n")
    ref, ep = _producer(api, folder)
    try:
        items = api.get("/v1/audiences").json["items"]
        by_ext = {a["external_id"]: a for a in items}
        assert set(by_ext) == {"vip", "lapsed"}
        vip = by_ext["vip"]
        assert vip["name"] == "VIP buyers" and vip["size"] == 2 and vip["identifiers"] == ["email"]
        assert vip["attributes"] == ["country"] and vip["tags"] == ["vip"] and vip["version"]
        (folder / "lapsed.csv").unlink()
        (folder / "new.csv").write_text("email\nd@example.com\n")
        r = api.post(f"/v1/endpoints/{ep['id']}/refresh")
        assert r.json == {"found": 2, "new": 1, "gone": 1}
        active = {a["external_id"] for a in api.get("/v1/audiences").json["items"]}
        assert active == {"vip", "new"}
        gone = api.get("/v1/audiences?status=gone").json["items"]
        assert [a["external_id"] for a in gone] == ["lapsed"] and gone[0]["status"] == "gone"
        # a gone audience is kept and readable
        assert api.get(f"/v1/audiences/{gone[0]['id']}").status_code == 200
    finally:
        ref.stop()


def test_refresh_error_is_recorded_not_raised(api, tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    ref, ep = _producer(api, folder)
    ref.stop()
    r = api.post(f"/v1/endpoints/{ep['id']}/refresh")
    assert r.status_code == 200 and r.json["error"]
    assert api.get(f"/v1/endpoints/{ep['id']}").json["last_refresh_error"]


def test_search_filters(api):
    p1 = api.post("/v1/endpoints", json={"name": "CDP", "producer": {"transport": "push"},
                                         "identifiers": ["email", "maid"]}).json
    p2 = api.post("/v1/endpoints", json={"name": "App", "producer": {"transport": "push"},
                                         "identifiers": ["maid"]}).json
    h1 = {"Authorization": f"Bearer {p1['endpoint_key']}"}
    h2 = {"Authorization": f"Bearer {p2['endpoint_key']}"}
    c = api.client
    assert c.put(f"/v1/endpoints/{p1['id']}/audiences/loyal", json={
        "name": "Loyal customers", "description": "Bought twice this year", "identifiers": ["email"],
        "tags": ["crm", "vip"], "size": 10}, headers=h1).status_code == 200
    assert c.put(f"/v1/endpoints/{p2['id']}/audiences/gamers", json={
        "name": "Mobile gamers", "identifiers": ["maid"], "tags": ["app"]}, headers=h2).status_code == 200

    def names(**q):
        return sorted(a["name"] for a in api.get("/v1/audiences", query_string=q).json["items"])

    assert names() == ["Loyal customers", "Mobile gamers"]
    assert names(q="LOYAL") == ["Loyal customers"]
    assert names(q="twice") == ["Loyal customers"]
    assert names(identifier="maid") == ["Mobile gamers"]
    assert names(identifier="email") == ["Loyal customers"]
    assert names(producer=p2["id"]) == ["Mobile gamers"]
    assert names(tag="vip") == ["Loyal customers"]
    assert names(tag="vi") == []  # tags match whole
    assert names(q="nothing-like-this") == []
    page = api.get("/v1/audiences?page_size=1&page=2").json
    assert page["total"] == 2 and len(page["items"]) == 1


def test_push_metadata_validation_and_scope(api, other_api):
    p = api.post("/v1/endpoints", json={"name": "CDP", "producer": {"transport": "push"},
                                        "identifiers": ["email"]}).json
    pull = api.post("/v1/endpoints", json={"name": "Wh", "consumer": {"transport": "pull"},
                                           "identifiers": ["email"]}).json
    h = {"Authorization": f"Bearer {p['endpoint_key']}"}
    url = f"/v1/endpoints/{p['id']}/audiences/a"
    for bad, field in [({"size": -1}, "size"), ({"tags": "x"}, "tags"),
                       ({"identifiers": ["Bad Name"]}, "identifiers.0"),
                       ({"bogus": 1}, "bogus"), ({"updated_at": "yesterday"}, "updated_at")]:
        r = api.client.put(url, json=bad, headers=h)
        assert r.status_code == 422 and field in r.json["errors"], (bad, r.json)
    # only PUSH producers upload; other accounts see 404
    r = api.put(f"/v1/endpoints/{pull['id']}/audiences/a", json={})
    assert r.status_code == 403
    r = other_api.put(url, json={})
    assert r.status_code == 404
    assert api.get("/v1/audiences").json["total"] == 0


def test_other_account_cannot_see_audience(api, other_api):
    p = api.post("/v1/endpoints", json={"name": "CDP", "producer": {"transport": "push"},
                                        "identifiers": ["email"]}).json
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/a", json={"name": "A"},
                   headers={"Authorization": f"Bearer {p['endpoint_key']}"})
    aid = api.get("/v1/audiences").json["items"][0]["id"]
    assert other_api.get(f"/v1/audiences/{aid}").status_code == 404
    assert other_api.get("/v1/audiences").json["total"] == 0
