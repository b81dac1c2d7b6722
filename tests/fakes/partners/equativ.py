"""A fake of Equativ's OAuth, Segment (Data Sync v2) and DMP profile APIs on one loopback server.

Enforced as partners/equativ.md and docs/adapters/equativ.md say. Documented, strictly:
client-credentials form fields and bearer tokens; the seed's segment body (exact fields and types:
``active``, ``description``, ``name``, ``price``, ``segmentId``, ``selectable``, ``ttl``).
Observed, by default: at most ``max_profiles`` (1000) profiles per request and at most
``profiles_per_second`` (1,000) profiles per second on the profiles route — a token bucket holding
one second's worth plus ``tolerance`` (5 %, the fake's allowance for network jitter), answering
429 with ``Retry-After`` when a request needs more profiles than are left; each profile
``{"profileId", "segmentIdsToSet"}``. Assumed, configurable: 201 with the segment and a numeric
``id`` on create, 409 on a duplicate segmentId, ``GET …/segments/{segmentId}``, ``remove_field``
(``segmentIdsToRemove``), ``segment_id_type`` of the ids in profiles (``string``: the segmentId;
``integer``: the numeric id), profiles naming only known segments, the error body
``{"error", "error_description"}``.
"""
from __future__ import annotations

import math
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
        profiles_per_second: float | None = 1000,
        tolerance: float = 0.05,
        remove_field: str = "segmentIdsToRemove",
        segment_id_type: str = "string",
        require_known_segments: bool = True,
        token_ttl: int = 3600,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.client_id, self.client_secret, self.provider_id = client_id, client_secret, provider_id
        self.max_profiles = max_profiles
        self.profiles_per_second = profiles_per_second
        self.profile_capacity = (profiles_per_second or 0) * (1 + tolerance)
        self._profile_tokens = self.profile_capacity
        self._profile_updated = self.clock()
        self.remove_field = remove_field
        self.segment_id_type = segment_id_type
        self.require_known_segments = require_known_segments
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.segments: dict[str, dict] = {}
        self.numeric_ids: dict[int, str] = {}
        self.members: dict[str, set[str]] = {}

    def error(self, status: int, message: str) -> Response:
        code = {400: "invalid_request", 401: "invalid_token", 403: "forbidden", 409: "conflict",
                429: "too_many_requests"}.get(status, "server_error")
        return json_response({"error": code, "error_description": message}, status)

    def handle(self, request: Request) -> Response | None:
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and parts == ["oauth", "token"]:
            return self._token(request)
        if len(parts) >= 3 and parts[0] == "segmentproviders":
            denied = self._authorize(request, parts[1])
            if denied:
                return denied
            if request.method == "POST" and parts[2:] == ["segments"]:
                return self._create_segment(request)
            if request.method == "GET" and parts[2] == "segments" and len(parts) == 4:
                with self.lock:
                    segment = self.segments.get(parts[3])
                return json_response(segment) if segment else self.error(404, "no such segment")
            if request.method == "POST" and parts[2:] == ["profiles"]:
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
            numeric = 100_000 + len(self.segments)
            self.segments[body["segmentId"]] = {**body, "id": numeric}
            self.numeric_ids[numeric] = body["segmentId"]
            self.members.setdefault(body["segmentId"], set())
        return json_response({**body, "id": numeric}, 201)

    def _take_profiles(self, count: int) -> Response | None:
        """The 1,000 profiles/s limit: None when ``count`` profiles may pass now, else a 429."""
        if not self.profiles_per_second:
            return None
        with self.lock:
            now = self.clock()
            self._profile_tokens = min(self.profile_capacity,
                                       self._profile_tokens + (now - self._profile_updated) * self.profiles_per_second)
            self._profile_updated = now
            if self._profile_tokens >= count:
                self._profile_tokens -= count
                return None
            self.throttled += 1
            wait = math.ceil((count - self._profile_tokens) / self.profiles_per_second)
        response = self.error(429, f"more than {self.profiles_per_second:g} profiles per second")
        response.headers["Retry-After"] = str(max(1, wait))
        return response

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
            kind = int if self.segment_id_type == "integer" else str
            if not ids or not all(isinstance(i, kind) and not isinstance(i, bool) for i in ids):
                return self.error(400, f"[{index}]: segment ids must be a non-empty list of {self.segment_id_type}s")
            known = self.numeric_ids if kind is int else self.segments
            if self.require_known_segments and any(i not in known for i in ids):
                return self.error(400, f"[{index}]: unknown segment id")
        throttled = self._take_profiles(len(body))
        if throttled is not None:
            return throttled
        with self.lock:
            for profile in body:
                for segment in profile.get("segmentIdsToSet", []):
                    self.members.setdefault(self._key(segment), set()).add(profile["profileId"])
                for segment in profile.get(self.remove_field, []):
                    self.members.setdefault(self._key(segment), set()).discard(profile["profileId"])
        return json_response({}, 200)

    def _key(self, segment: str | int) -> str:
        return self.numeric_ids.get(segment, str(segment)) if isinstance(segment, int) else segment
