"""A fake of Batch's audience APIs: Custom Audience API 1.0 and 1.1, and the 2.x Audience API.

Enforced as partners/batch.md and docs/adapters/batch.md say (sources: doc.batch.com pages
``api/custom-audience/1.0/*``, ``…/1.1/*`` and ``developer/api/cep/audiences/*``).

Documented, strictly:

* **1.0** ``/1.0/{API_KEY}/custom-audience[/{name}]`` with ``X-Authorization: <REST key>``: custom
  user ids (and advertising ids) only; create ``{"type", "description"?}`` → 200 ``{}``; PATCH
  ``{"type"?, "ids": [{"action", "id"}]}``.
* **1.1** the same paths under ``/1.1/``: *install ids only* — creating a ``custom_ids`` audience
  or patching one is refused (400 ``API_MISUSE``-style body), as Batch's 1.1 pages say.
* **2.x** ``/{2.N}/audiences/{create,update,replace,remove,view,list}`` with ``Authorization: Bearer
  <REST key>`` and ``X-Batch-Project``: create ``{"name", "type": "custom_ids", "display_name"?}``
  → 202 ``{"indexing_token"}``; update ``{"name", "ids": [{"action", "id", "attributes"?}]}``
  (attributes only on add, ≤ 15 per id, no tags); view ``?name=&indexing_token=`` →
  ``{name, display_name, type: "CUSTOM_ID", nb_ids, indexing_state, created, updated}``; list
  ``?from=&limit`` (≤ 100) → ``{audiences, count, has_more, next_from}``.
* Everywhere: names ``[A-Za-z0-9_-]{1,255}``, at most 10,000 ids per request, wrong keys → 401.

Assumed, configurable: 1.0 refusing ``attributes``/``tags`` (its pages show none:
``v10_properties``), 1.x answers 202 ``{"indexing_token"}`` to PATCH, 404 for an unknown audience,
error bodies (1.x ``{"code", "message"}``, 2.x ``{"error_code", "error_message"}``), the rate limit
(off unless ``rate_limit``).
"""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from werkzeug.wrappers import Request, Response

from tests.fakes.partners.server import FakePartner, check_fields, json_response

NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
V2 = re.compile(r"^2\.[0-9]{1,2}$")
CODES = {401: (10, "AUTHENTICATION_INVALID"), 403: (12, "API_MISUSE"), 404: (30, "NOT_FOUND"),
         400: (20, "BAD_REQUEST"), 429: (13, "RATE_LIMITED")}
MAX_ATTRIBUTES = 15


def _now(zone: str = "") -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S") + zone


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class FakeBatch(FakePartner):
    def __init__(self, *, api_key: str = "DEVAPIKEY0123456789", rest_api_key: str = "rest-s3cret-batch",
                 project_key: str = "project_0664hxvwffvbpn278gxd", max_ids: int = 10_000,
                 indexing_state: str = "APPLIED", in_progress_views: int = 0, v10_properties: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.api_key, self.rest_api_key, self.project_key = api_key, rest_api_key, project_key
        self.max_ids = max_ids
        self.indexing_state = indexing_state
        # Indexing is usually real time but not guaranteed (documented): the first
        # ``in_progress_views`` views after a write report IN_PROGRESS.
        self.in_progress_views = in_progress_views
        self._pending_views: dict[str, int] = {}
        self.v10_properties = v10_properties
        self.audiences: dict[str, dict] = {}
        self.members: dict[str, dict[str, dict]] = {}  # name -> id -> {"attributes", "tags"}
        self.api_of: dict[str, str] = {}  # name -> "1.0" | "1.1" | "2.x": who created it
        self._v2_error = False

    def error(self, status: int, message: str) -> Response:
        code, name = CODES.get(status, (1, "SERVER_ERROR"))
        if self._v2_error:
            return json_response({"error_code": name, "error_message": message}, status)
        return json_response({"code": code, "message": f"{name}: {message}"}, status)

    def handle(self, request: Request) -> Response | None:
        parts = request.path.strip("/").split("/")
        self._v2_error = bool(parts) and bool(V2.match(parts[0]))
        try:
            if parts[0] in ("1.0", "1.1") and len(parts) in (3, 4) and parts[2] == "custom-audience":
                return self._v1(request, parts[0], parts[1], parts[3] if len(parts) == 4 else None)
            if self._v2_error and len(parts) == 3 and parts[1] == "audiences":
                return self._v2(request, parts[2])
        except _Refused as refused:
            return self.error(refused.status, str(refused))
        return None

    # -- shared ------------------------------------------------------------------------------
    def _json_body(self, request: Request) -> object:
        if request.mimetype != "application/json":
            raise _Refused(400, "Content-Type must be application/json")
        return request.get_json(silent=True)

    def _check_ids(self, body: dict, *, with_action: bool, spec_extra: dict, where: str = "ids") -> None:
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or len(ids) > self.max_ids:
            raise _Refused(400, f"{where} must hold between 1 and {self.max_ids} elements")
        spec = {"id": str, **spec_extra}
        if with_action:
            spec["action"] = str
        for index, item in enumerate(ids):
            problem = check_fields(item, spec, optional=frozenset(spec_extra), where=f"ids[{index}]")
            if problem:
                raise _Refused(400, problem)
            if not item["id"]:
                raise _Refused(400, f"ids[{index}].id is empty")
            if with_action and item["action"] not in ("add", "remove"):
                raise _Refused(400, f"ids[{index}].action must be add or remove")
            if with_action and item["action"] == "remove" and ("attributes" in item or "tags" in item):
                raise _Refused(400, f"ids[{index}]: attributes are only accepted for the add action")
            if len(item.get("attributes", {})) > MAX_ATTRIBUTES:
                raise _Refused(400, f"ids[{index}].attributes: at most {MAX_ATTRIBUTES} elements")
            if not all(isinstance(tag, str) for tag in item.get("tags", [])):
                raise _Refused(400, f"ids[{index}].tags must be strings")

    def _apply(self, name: str, ids: list[dict], *, replace: bool = False) -> None:
        with self.lock:
            if name not in self.audiences:
                raise _Refused(404, f"audience {name} not found")
            members = {} if replace else self.members[name]
            for item in ids:  # if the same id appears twice, the last action wins (documented)
                if item.get("action", "add") == "add":
                    members[item["id"]] = {"attributes": item.get("attributes", {}), "tags": item.get("tags", [])}
                else:
                    members.pop(item["id"], None)
            self.members[name] = members
            self._pending_views[name] = self.in_progress_views
            self.audiences[name]["updated"] = _now("Z" if self.api_of[name] == "2.x" else "")

    def _create(self, name: str, api: str, record: dict) -> None:
        with self.lock:
            if name in self.audiences:
                raise _Refused(400, f"audience {name} already exists")
            self.audiences[name] = {**record, "created": record["updated"]}
            self.members[name] = {}
            self.api_of[name] = api

    # -- Custom Audience API 1.0 / 1.1 -----------------------------------------------------
    def _v1(self, request: Request, version: str, api_key: str, name: str | None) -> Response | None:
        if api_key != self.api_key or request.headers.get("X-Authorization") != self.rest_api_key:
            raise _Refused(401, "invalid API key or REST API key")
        if name is None:
            return self._v1_list(request) if request.method == "GET" else None
        if not NAME.match(name):
            raise _Refused(400, "audience name must match [A-Za-z0-9_-]{1,255}")
        if request.method == "GET":
            return self._v1_view(name)
        if request.method == "DELETE":
            with self.lock:
                if self.audiences.pop(name, None) is None:
                    raise _Refused(404, f"custom audience {name} not found")
                self.members.pop(name, None)
            return json_response({})
        if request.method not in ("POST", "PATCH", "PUT"):
            return None
        body = self._json_body(request)
        allowed = {"custom_ids", "advertising_ids"} if version == "1.0" else {"install_ids"}
        refusal = (f"Custom Audience API {version} only accepts "
                   + ("custom user IDs and advertising IDs" if version == "1.0" else "install IDs")
                   + "; use " + ("1.1 for install IDs" if version == "1.0" else "1.0 for custom user IDs"))
        if request.method == "POST":
            problem = check_fields(body, {"type": str, "description": str}, optional=frozenset({"description"}))
            if problem:
                raise _Refused(400, problem)
            if body["type"] not in allowed:
                raise _Refused(400, refusal)
            self._create(name, version, {"name": name, "type": body["type"],
                                         "description": body.get("description", ""), "updated": _now()})
            return json_response({})
        with self.lock:
            kind = self.audiences.get(name, {}).get("type")
        if kind is not None and (kind not in allowed or self.api_of.get(name) != version):
            raise _Refused(400, refusal)
        if not isinstance(body, dict):
            raise _Refused(400, "body must be an object")
        problem = check_fields({k: v for k, v in body.items() if k != "ids"}, {"type": str},
                               optional=frozenset({"type"}))
        if problem or body.get("type", kind) not in allowed:
            raise _Refused(400, problem or refusal)
        extra = {"attributes": dict, "tags": list} if (version == "1.1" or self.v10_properties) else {}
        self._check_ids(body, with_action=request.method == "PATCH", spec_extra=extra)
        self._apply(name, body["ids"], replace=request.method == "PUT")
        return json_response({"indexing_token": secrets.token_hex(8)}, 202)

    def _v1_list(self, request: Request) -> Response:
        try:
            start, limit = int(request.args.get("from", 0)), int(request.args.get("limit", 10))
        except ValueError:
            raise _Refused(400, "from and limit must be integers") from None
        if not 0 < limit <= 100 or start < 0:
            raise _Refused(400, "limit must be between 1 and 100")
        with self.lock:
            items = sorted(self.audiences.values(), key=lambda a: a["created"], reverse=True)
            page = [{**a, "nb_ids": len(self.members[a["name"]])} for a in items[start:start + limit]]
        return json_response({"custom_audiences": page})

    def _v1_view(self, name: str) -> Response:
        with self.lock:
            if name not in self.audiences:
                raise _Refused(404, f"custom audience {name} not found")
            return json_response({**self.audiences[name], "nb_ids": len(self.members[name]),
                                  "indexing_state": self._state(name)})

    # -- Audience API 2.x ------------------------------------------------------------------
    def _v2(self, request: Request, action: str) -> Response | None:
        if (request.headers.get("Authorization") != f"Bearer {self.rest_api_key}"
                or request.headers.get("X-Batch-Project") != self.project_key):
            raise _Refused(401, "The Rest API Key is not valid for this project")
        if request.method == "GET" and action in ("view", "list"):
            return self._v2_view(request) if action == "view" else self._v2_list(request)
        if request.method != "POST" or action not in ("create", "update", "replace", "remove"):
            return None
        body = self._json_body(request)
        if action == "create":
            problem = check_fields(body, {"name": str, "type": str, "display_name": str},
                                   optional=frozenset({"display_name"}))
            if problem:
                raise _Refused(400, problem)
            if not NAME.match(body["name"]):
                raise _Refused(400, "name must match [A-Za-z0-9_-]{1,255}")
            if body["type"] != "custom_ids":
                raise _Refused(400, "type: only custom_ids is accepted")
            self._create(body["name"], "2.x", {"name": body["name"], "display_name": body.get("display_name", ""),
                                               "type": "CUSTOM_ID", "updated": _now("Z")})
            return json_response({"indexing_token": secrets.token_hex(8)}, 202)
        if action == "remove":
            problem = check_fields(body, {"name": str})
            if problem:
                raise _Refused(400, problem)
            with self.lock:
                if self.audiences.pop(body["name"], None) is None:
                    raise _Refused(404, f"audience {body['name']} not found")
                self.members.pop(body["name"], None)
            return json_response({"indexing_token": secrets.token_hex(8)}, 202)
        problem = check_fields(body, {"name": str, "ids": list})
        if problem:
            raise _Refused(400, problem)
        with self.lock:
            if self.api_of.get(body["name"], "2.x") != "2.x":
                raise _Refused(404, f"audience {body['name']} not found")
        self._check_ids(body, with_action=action == "update", spec_extra={"attributes": dict})
        self._apply(body["name"], body["ids"], replace=action == "replace")
        return json_response({"indexing_token": secrets.token_hex(8)}, 202)

    def _v2_record(self, name: str) -> dict:
        return {**self.audiences[name], "nb_ids": len(self.members[name]), "indexing_state": self._state(name)}

    def _state(self, name: str) -> str:
        left = self._pending_views.get(name, 0)
        if left > 0:
            self._pending_views[name] = left - 1
            return "IN_PROGRESS"
        return self.indexing_state

    def _v2_view(self, request: Request) -> Response:
        name = request.args.get("name", "")
        with self.lock:
            if name not in self.audiences or self.api_of[name] != "2.x":
                raise _Refused(404, f"audience {name} not found")
            return json_response(self._v2_record(name))

    def _v2_list(self, request: Request) -> Response:
        try:
            limit = int(request.args.get("limit", 10))
            start = int(request.args.get("from") or 0)
        except ValueError:
            raise _Refused(400, "from must be a cursor returned by list and limit an integer") from None
        if not 0 < limit <= 100:
            raise _Refused(400, "limit: max 100")
        with self.lock:
            names = sorted((n for n, api in self.api_of.items() if api == "2.x" and n in self.audiences),
                           key=lambda n: self.audiences[n]["created"], reverse=True)
            page = [self._v2_record(n) for n in names[start:start + limit]]
        answer: dict = {"audiences": page, "has_more": start + limit < len(names)}
        if answer["has_more"]:
            answer["next_from"] = str(start + limit)
        if start == 0:
            answer["count"] = len(names)
        return json_response(answer)
