"""A fake of the Equals Segment-connection URL: one identify event per POST.

Enforced as partners/equals.md says. Documented: only the configured URL path exists (any other
path is the partner's 404 — a wrong URL), a JSON body whatever the Content-Type, one event per
request (an array is refused), Segment's identify shape (``type`` "identify", ``userId``,
``traits`` object, ``timestamp``, ``messageId``; other Segment keys are allowed because Segment
sends its whole payload by default); duplicate ``messageId``s are acknowledged but not applied
twice. Assumed, configurable: 200 on success, the rate limit (off unless ``rate_limit``).
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime

from werkzeug.wrappers import Request, Response

from tests.fakes.partners.server import FakePartner, json_response

REQUIRED = {"type": str, "userId": str, "traits": dict, "timestamp": str, "messageId": str}


class FakeEquals(FakePartner):
    def __init__(self, *, path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.path = path or f"/segment/{secrets.token_hex(12)}"
        self.users: dict[str, dict] = {}
        self.message_ids: set[str] = set()
        self.duplicates = 0

    @property
    def ingest_url(self) -> str:
        return self.url + self.path

    def members(self, trait: str) -> set[str]:
        with self.lock:
            return {user for user, traits in self.users.items() if traits.get(trait) is True}

    def handle(self, request: Request) -> Response | None:
        if request.path != self.path:
            return self.error(404, "not found")
        if request.method != "POST":
            return self.error(405, "method not allowed")
        try:
            event = json.loads(request.get_data() or b"null")
        except ValueError:
            return self.error(400, "body is not JSON")
        if not isinstance(event, dict):
            return self.error(400, "one event object per request")
        for key, kind in REQUIRED.items():
            if not isinstance(event.get(key), kind) or isinstance(event.get(key), bool):
                return self.error(400, f"'{key}' missing or not a {kind.__name__}")
        if event["type"] != "identify" or not event["userId"] or not event["messageId"]:
            return self.error(400, "expected an identify with a userId and a messageId")
        try:
            datetime.fromisoformat(event["timestamp"])
        except ValueError:
            return self.error(400, "timestamp is not ISO 8601")
        with self.lock:
            if event["messageId"] in self.message_ids:
                self.duplicates += 1
                return json_response({"success": True})
            self.message_ids.add(event["messageId"])
            self.users.setdefault(event["userId"], {}).update(event["traits"])
        return json_response({"success": True})
