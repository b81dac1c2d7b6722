"""A fake of Batch's Custom Audience API 1.1 (``/1.1/{API_KEY}/custom-audience[/{name}]``).

Enforced as partners/batch.md says. Documented, strictly: the API key in the path and the REST
key in ``X-Authorization`` (401 ``AUTHENTICATION_INVALID``, code 10), audience names
``[A-Za-z0-9_-]{1,255}``, at most 10,000 ``ids`` per request, ``action`` add/remove, list
``limit`` ≤ 100 newest first, the audience read-back fields. Assumed, configurable: the create
body ``{"type", "description"}``, 202 ``{"indexing_token"}`` on PATCH/PUT, 404 for an unknown
audience, the error body ``{"code", "message"}``, the rate limit (off unless ``rate_limit``).
"""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from werkzeug.wrappers import Request, Response

from tests.fakes.partners.server import FakePartner, check_fields, json_response

NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
CODES = {401: (10, "AUTHENTICATION_INVALID"), 403: (12, "API_MISUSE"), 404: (30, "NOT_FOUND"),
         400: (20, "BAD_REQUEST"), 429: (13, "RATE_LIMITED")}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class FakeBatch(FakePartner):
    def __init__(self, *, api_key: str = "DEVAPIKEY0123456789", rest_api_key: str = "rest-s3cret-batch",
                 max_ids: int = 10_000, indexing_state: str = "APPLIED", **kwargs):
        super().__init__(**kwargs)
        self.api_key, self.rest_api_key = api_key, rest_api_key
        self.max_ids = max_ids
        self.indexing_state = indexing_state
        self.audiences: dict[str, dict] = {}
        self.members: dict[str, dict[str, dict]] = {}  # name -> id -> {"attributes", "tags"}

    def error(self, status: int, message: str) -> Response:
        code, name = CODES.get(status, (1, "SERVER_ERROR"))
        return json_response({"code": code, "message": f"{name}: {message}"}, status)

    def handle(self, request: Request) -> Response | None:
        parts = request.path.strip("/").split("/")
        if len(parts) not in (3, 4) or parts[0] != "1.1" or parts[2] != "custom-audience":
            return None
        if parts[1] != self.api_key or request.headers.get("X-Authorization") != self.rest_api_key:
            return self.error(401, "invalid API key or REST API key")
        if len(parts) == 3:
            return self._list(request) if request.method == "GET" else None
        name = parts[3]
        if not NAME.match(name):
            return self.error(400, "audience name must match [A-Za-z0-9_-]{1,255}")
        if request.method in ("POST", "PATCH", "PUT"):
            if request.mimetype != "application/json":
                return self.error(400, "Content-Type must be application/json")
            body = request.get_json(silent=True)
        handler = {"GET": self._get, "POST": self._create, "PATCH": self._patch, "PUT": self._put,
                   "DELETE": self._delete}.get(request.method)
        if handler is None:
            return None
        if request.method in ("GET", "DELETE"):
            return handler(request, name)
        return handler(name, body)

    def _list(self, request: Request) -> Response:
        try:
            start, limit = int(request.args.get("from", 0)), int(request.args.get("limit", 10))
        except ValueError:
            return self.error(400, "from and limit must be integers")
        if not 0 < limit <= 100 or start < 0:
            return self.error(400, "limit must be between 1 and 100")
        with self.lock:
            items = sorted(self.audiences.values(), key=lambda a: a["created"], reverse=True)
            page = [self._view(a["name"], with_state=False) for a in items[start:start + limit]]
        return json_response({"custom_audiences": page})

    def _view(self, name: str, *, with_state: bool = True) -> dict:
        audience = self.audiences[name]
        view = {**audience, "nb_ids": len(self.members[name])}
        if with_state:
            view["indexing_state"] = self.indexing_state
        return view

    def _get(self, request: Request, name: str) -> Response:
        with self.lock:
            if name not in self.audiences:
                return self.error(404, f"custom audience {name} not found")
            return json_response(self._view(name))

    def _create(self, name: str, body: object) -> Response:
        problem = check_fields(body, {"type": str, "description": str})
        if problem:
            return self.error(400, problem)
        if body["type"] not in ("custom_ids", "install_ids"):
            return self.error(400, "type must be custom_ids or install_ids")
        with self.lock:
            now = _now()
            created = self.audiences.get(name, {}).get("created", now)
            self.audiences[name] = {"name": name, "type": body["type"], "description": body["description"],
                                    "created": created, "updated": now}
            self.members.setdefault(name, {})
        return json_response({})

    def _check_ids(self, body: object, *, with_action: bool) -> str | None:
        problem = check_fields(body, {"ids": list})
        if problem:
            return problem
        if not body["ids"] or len(body["ids"]) > self.max_ids:
            return f"ids must hold between 1 and {self.max_ids} elements"
        spec = {"id": str, "attributes": dict, "tags": list}
        if with_action:
            spec["action"] = str
        for index, item in enumerate(body["ids"]):
            problem = check_fields(item, spec, optional=frozenset({"attributes", "tags"}), where=f"ids[{index}]")
            if problem:
                return problem
            if not item["id"]:
                return f"ids[{index}].id is empty"
            if with_action and item["action"] not in ("add", "remove"):
                return f"ids[{index}].action must be add or remove"
            if not all(isinstance(tag, str) for tag in item.get("tags", [])):
                return f"ids[{index}].tags must be strings"
        return None

    def _patch(self, name: str, body: object) -> Response:
        problem = self._check_ids(body, with_action=True)
        if problem:
            return self.error(400, problem)
        with self.lock:
            if name not in self.audiences:
                return self.error(404, f"custom audience {name} not found")
            members = self.members[name]
            for item in body["ids"]:
                if item["action"] == "add":
                    members[item["id"]] = {"attributes": item.get("attributes", {}), "tags": item.get("tags", [])}
                else:
                    members.pop(item["id"], None)
            self.audiences[name]["updated"] = _now()
        return json_response({"indexing_token": secrets.token_hex(8)}, 202)

    def _put(self, name: str, body: object) -> Response:
        problem = self._check_ids(body, with_action=False)
        if problem:
            return self.error(400, problem)
        with self.lock:
            if name not in self.audiences:
                return self.error(404, f"custom audience {name} not found")
            self.members[name] = {i["id"]: {"attributes": i.get("attributes", {}), "tags": i.get("tags", [])}
                                  for i in body["ids"]}
        return json_response({"indexing_token": secrets.token_hex(8)}, 202)

    def _delete(self, request: Request, name: str) -> Response:
        with self.lock:
            if self.audiences.pop(name, None) is None:
                return self.error(404, f"custom audience {name} not found")
            self.members.pop(name, None)
        return json_response({})
