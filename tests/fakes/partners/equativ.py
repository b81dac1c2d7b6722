"""A fake of Equativ's OAuth, Segment (Data Sync v2) and DMP profile APIs on one loopback server.

Enforced as partners/equativ.md says. Documented, strictly: client-credentials form fields and
bearer tokens, the segment body's exact fields and types. Observed, by default: at most
``max_profiles`` (1000) profiles per request, each ``{"profileId", "segmentIdsToSet"}``.
Assumed, configurable: 201 on create and 409 on a duplicate segmentId, ``remove_field``
(``segmentIdsToRemove``), profiles naming only known segments, the error body shape
``{"error", "error_description"}``.
"""
from __future__ import annotations

import secrets
import time

from werkzeug.wrappers import Request, Response

from tests.fakes.partners.server import FakePartner, check_fields, json_response

SEGMENT_FIELDS = {
    "active": bool,
    "description": str,
    "name": str,
    "price": (int, float),
    "segmentId": str,
    "selectable": bool,
    "ttl": int,
}


class FakeEquativ(FakePartner):
    def __init__(
        self,
        *,
        client_id: str = "client-1",
        client_secret: str = "s3cret-equativ-client",
        provider_id: str = "4242",
        max_profiles: int = 1000,
        remove_field: str = "segmentIdsToRemove",
        require_known_segments: bool = True,
        token_ttl: int = 3600,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.client_id, self.client_secret, self.provider_id = client_id, client_secret, provider_id
        self.max_profiles = max_profiles
        self.remove_field = remove_field
        self.require_known_segments = require_known_segments
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.segments: dict[str, dict] = {}
        self.members: dict[str, set[str]] = {}

    def error(self, status: int, message: str) -> Response:
        code = {400: "invalid_request", 401: "invalid_token", 403: "forbidden", 409: "conflict",
                429: "too_many_requests"}.get(status, "server_error")
        return json_response({"error": code, "error_description": message}, status)

    def handle(self, request: Request) -> Response | None:
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and parts == ["oauth", "token"]:
            return self._token(request)
        if request.method == "POST" and len(parts) == 3 and parts[0] == "segmentproviders":
            denied = self._authorize(request, parts[1])
            if denied:
                return denied
            if parts[2] == "segments":
                return self._create_segment(request)
            if parts[2] == "profiles":
                return self._profiles(request)
        return None

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type", "error_description": "grant_type"}, 400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl})

    def _authorize(self, request: Request, provider_id: str) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        with self.lock:
            expiry = self.tokens.get(token or "")
        if expiry is None or expiry < time.monotonic():
            return self.error(401, "missing, invalid or expired access token")
        if provider_id != self.provider_id:
            return self.error(403, "not allowed for this segment provider")
        return None

    def _create_segment(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        problem = check_fields(body, SEGMENT_FIELDS)
        if problem:
            return self.error(400, problem)
        with self.lock:
            if body["segmentId"] in self.segments:
                return self.error(409, f"segment {body['segmentId']} already exists")
            self.segments[body["segmentId"]] = body
            self.members.setdefault(body["segmentId"], set())
        return json_response(body, 201)

    def _profiles(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, list) or not body:
            return self.error(400, "body must be a non-empty array of profiles")
        if len(body) > self.max_profiles:
            return self.error(400, f"at most {self.max_profiles} profiles per request")
        spec = {"profileId": str, "segmentIdsToSet": list, self.remove_field: list}
        optional = frozenset({"segmentIdsToSet", self.remove_field})
        for index, profile in enumerate(body):
            problem = check_fields(profile, spec, optional=optional, where=f"[{index}]")
            if problem:
                return self.error(400, problem)
            if not profile["profileId"]:
                return self.error(400, f"[{index}].profileId is empty")
            ids = profile.get("segmentIdsToSet", []) + profile.get(self.remove_field, [])
            if not ids or not all(isinstance(i, str) for i in ids):
                return self.error(400, f"[{index}]: segment ids must be a non-empty list of strings")
            if self.require_known_segments and any(i not in self.segments for i in ids):
                return self.error(400, f"[{index}]: unknown segment id")
        with self.lock:
            for profile in body:
                for segment in profile.get("segmentIdsToSet", []):
                    self.members.setdefault(segment, set()).add(profile["profileId"])
                for segment in profile.get(self.remove_field, []):
                    self.members.setdefault(segment, set()).discard(profile["profileId"])
        return json_response({}, 200)
