"""A fake of StackAdapt's GraphQL API (``POST /graphql``) that validates every document with graphql-core.

Enforced as partners/stackadapt.md and docs/adapters/stackadapt.md say:

* **Schema (documented/observed)**: every document is parsed and validated against
  ``stackadapt.graphql`` — the published input types (``MappingSchema`` with required ``label:
  String!`` and ``isPii: Boolean!``, ``type`` an enum literal, ``UpsertProfilesInput`` …). A
  document with any validation error is refused as a whole, like any GraphQL server: HTTP 200 with
  ``errors`` and no ``data``, nothing applied.
* **Values (documented by Segment's destination)**: ``externalProvider`` and ``mappableType`` are
  ``"segment_io"``; ``advertiserId`` is an integer literal (the schema says ``ID``, which would also
  take a string: ``integer_ids=False`` relaxes this). Refused before anything runs, like a
  validation error.
* **Transport (observed)**: bearer token (401 ``UNAUTHENTICATED``), body keys limited to
  query/variables/operationName (400), ``tokenInfo`` scopes; an advertiser the token may not write is
  refused with ``FORBIDDEN`` before anything runs.
* **Profiles (observed)**: the ``profiles`` JSON string, ``email`` required, ``action`` enter/exit;
  a bad profile is a ``userErrors`` entry with ``path`` ["profiles", "<index>"] (strings, per
  ``UserError.path: [String!]``) and the others are applied. ``syncId`` dedupes a batch.
* **Assumed, configurable**: ``max_profiles`` per request (1000), the rate limit (off unless
  ``rate_limit``), 429 without ``Retry-After``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from graphql import GraphQLError, build_schema, execute_sync, parse, validate
from graphql.language import (
    DocumentNode,
    FieldNode,
    IntValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    VariableNode,
)
from graphql.utilities import value_from_ast_untyped
from werkzeug.wrappers import Request, Response

from tests.fakes.partners.server import FakePartner, json_response

SCHEMA = build_schema((Path(__file__).with_name("stackadapt.graphql")).read_text(encoding="utf-8"))
PROVIDER = "segment_io"
PROVIDER_FIELDS = {"externalProvider", "mappableType"}
# ``profiles: "<a JSON array as a GraphQL string>"``: GraphQL string escapes are JSON's, so the
# literal decodes with json.loads. Lexing a 1,000-profile literal costs graphql-core ~100 ms of
# CPU, which would make the fake (not the adapter) the bottleneck of the bench; it is cut out,
# decoded here, and put back into the coerced input — the document is still parsed and
# validated whole, with a short string in its place.
_PROFILES_LITERAL = re.compile(r'(\bprofiles\s*:\s*)("(?:[^"\\\n\r]|\\.)*")')


def extract_profiles(query: str) -> tuple[str, dict[str, str]]:
    """``query`` with each ``profiles`` string literal replaced by a placeholder, and the values."""
    values: dict[str, str] = {}

    def cut(match: re.Match) -> str:
        try:
            value = json.loads(match.group(2))
        except ValueError:
            return match.group(0)  # leave it to the GraphQL parser to report
        placeholder = f"__profiles_{len(values)}__"
        values[placeholder] = value
        return f'{match.group(1)}"{placeholder}"'

    return _PROFILES_LITERAL.sub(cut, query), values


class FakeStackAdapt(FakePartner):
    send_retry_after = False

    def __init__(self, *, token: str = "sa-gql-s3cret-token", advertiser_id: str = "9001",
                 scopes: tuple[str, ...] = ("READ", "WRITE"), max_profiles: int = 1000,
                 integer_ids: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.token, self.advertiser_id, self.scopes = token, advertiser_id, list(scopes)
        self.max_profiles = max_profiles
        self.integer_ids = integer_ids
        self.profiles: dict[tuple[str, str], dict] = {}
        self.memberships: dict[str, set[str]] = {}
        self.profile_mappings: list[dict] = []
        self.audience_mappings: list[dict] = []
        self.sync_ids: set[str] = set()
        self.refused: list[list[dict]] = []  # the errors of every document refused as a whole

    @staticmethod
    def profiles_in(record) -> int | None:
        """How many profiles a recorded request carried (None when it carried none)."""
        query = (record.json or {}).get("query", "")
        if "upsertProfiles" not in query:
            return None
        _, values = extract_profiles(query)
        for value in values.values():
            return len(json.loads(value))
        return None

    def audience_members(self, audience_id: str) -> set[str]:
        with self.lock:
            return set(self.memberships.get(audience_id, set()))

    def error(self, status: int, message: str) -> Response:
        code = {401: "UNAUTHENTICATED", 429: "RATE_LIMITED", 400: "BAD_REQUEST"}.get(status, "INTERNAL")
        return json_response({"errors": [{"message": message, "extensions": {"code": code}}]}, status)

    def _refuse(self, errors: list[dict]) -> Response:
        with self.lock:
            self.refused.append(errors)
        return json_response({"errors": errors})

    # -- transport -----------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        if request.path != "/graphql" or request.method != "POST":
            return None
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "Unauthorized: missing or invalid token")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self.error(400, "body must be a JSON object with a query")
        extra = set(body) - {"query", "variables", "operationName"}
        if extra:
            return self.error(400, f"unexpected keys {sorted(extra)}")
        variables = body.get("variables") or {}
        query, cut = extract_profiles(body["query"])
        try:
            document = parse(query)
        except GraphQLError as err:
            return self._refuse([_formatted(err, "GRAPHQL_PARSE_FAILED")])
        # Like any GraphQL server: validate the whole document first, execute nothing if invalid.
        errors = [_formatted(e, "GRAPHQL_VALIDATION_FAILED") for e in validate(SCHEMA, document)]
        if not errors:
            errors = self._contract_errors(document, variables)
        if errors:
            return self._refuse(errors)
        result = execute_sync(SCHEMA, document, root_value=_Root(self, cut), variable_values=variables,
                              operation_name=body.get("operationName"))
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [_formatted(e, "INTERNAL") for e in result.errors]
        return json_response(answer)

    def _contract_errors(self, document: DocumentNode, variables: dict) -> list[dict]:
        """Checks the schema cannot express: provider values, integer advertiser ids, write scope."""
        errors = []
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode) or definition.operation.value != "mutation":
                continue
            for selection in definition.selection_set.selections:
                if not isinstance(selection, FieldNode):
                    continue
                name = selection.name.value
                for argument in selection.arguments or ():
                    if not isinstance(argument.value, ObjectValueNode):
                        continue
                    for field in argument.value.fields:
                        key, node = field.name.value, field.value
                        value = value_from_ast_untyped(node, variables)
                        if key in PROVIDER_FIELDS and value != PROVIDER:
                            errors.append(_error(f"{name}: {key} must be \"{PROVIDER}\"", name, "BAD_USER_INPUT"))
                        if key == "advertiserId":
                            integer = isinstance(node, IntValueNode) or (
                                isinstance(node, VariableNode) and isinstance(value, int))
                            if self.integer_ids and not integer:
                                kind = "a string" if isinstance(node, StringValueNode) else type(node).__name__
                                errors.append(_error(f"{name}: advertiserId must be an integer, got {kind}",
                                                     name, "BAD_USER_INPUT"))
                            elif str(value) != self.advertiser_id or "WRITE" not in self.scopes:
                                errors.append(_error(f"{name}: not allowed to write for advertiser {value}",
                                                     name, "FORBIDDEN"))
        return errors

    # -- operations (called by graphql-core through _Root) -------------------------------
    def token_info(self) -> dict:
        node = {"advertiser": {"id": self.advertiser_id, "name": f"Advertiser {self.advertiser_id}"},
                "scopes": self.scopes}
        return {"createdAt": "2026-01-01T00:00:00Z", "expiresAt": None, "name": "fake token",
                "scopesByAdvertiser": lambda info, **_: {"nodes": [node], "totalCount": 1}}

    def upsert_profile_mapping(self, value: dict) -> dict:
        with self.lock:
            self.profile_mappings.append(value)
        return {"userErrors": []}

    def upsert_external_audience_mapping(self, value: dict) -> dict:
        with self.lock:
            self.audience_mappings.append(value)
        return {"userErrors": []}

    def upsert_profiles(self, value: dict) -> dict:
        sync_id = value.get("syncId") or ""
        if not re.fullmatch(r"[0-9a-f]{64}", sync_id):
            return {"userErrors": [{"message": "syncId must be a SHA-256 hex digest", "path": ["syncId"]}]}
        try:
            profiles = json.loads(value["profiles"]) if isinstance(value["profiles"], str) else value["profiles"]
        except ValueError:
            profiles = None
        if not isinstance(profiles, list):
            return {"userErrors": [{"message": "profiles is not a JSON array", "path": ["profiles"]}]}
        if len(profiles) > self.max_profiles:
            return {"userErrors": [{"message": f"at most {self.max_profiles} profiles per request",
                                    "path": ["profiles"]}]}
        with self.lock:
            if sync_id in self.sync_ids:
                return {"userErrors": []}  # the same batch again: already applied
            self.sync_ids.add(sync_id)
            user_errors = []
            for index, profile in enumerate(profiles):
                problem = _profile_problem(profile)
                if problem:
                    user_errors.append({"message": problem, "path": ["profiles", str(index)]})
                    continue
                self.profiles[(str(value["advertiserId"]), profile["userId"])] = profile
                members = self.memberships.setdefault(profile["audienceId"], set())
                if profile["action"] == "enter":
                    members.add(profile["userId"])
                else:
                    members.discard(profile["userId"])
        return {"userErrors": user_errors}

    def delete_profiles(self, value: dict) -> dict:
        with self.lock:
            for external_id in value["externalIds"]:
                for advertiser in value.get("advertiserIds") or [self.advertiser_id]:
                    self.profiles.pop((str(advertiser), external_id), None)
                for members in self.memberships.values():
                    members.discard(external_id)
        return {"userErrors": []}


class _Root:
    """The root value graphql-core resolves top-level fields on (default resolver: call with args)."""

    def __init__(self, fake: FakeStackAdapt, cut: dict[str, str]) -> None:
        self.fake, self.cut = fake, cut

    def tokenInfo(self, info):  # noqa: N802 - GraphQL field names
        return self.fake.token_info()

    def upsertProfileMapping(self, info, input):  # noqa: N802,A002
        return self.fake.upsert_profile_mapping(input)

    def upsertExternalAudienceMapping(self, info, input):  # noqa: N802,A002
        return self.fake.upsert_external_audience_mapping(input)

    def upsertProfiles(self, info, input):  # noqa: N802,A002
        profiles = input.get("profiles")
        if isinstance(profiles, str) and profiles in self.cut:
            input = {**input, "profiles": self.cut[profiles]}  # noqa: A001 - the literal cut out before parsing
        return self.fake.upsert_profiles(input)

    def deleteProfilesWithExternalIds(self, info, input):  # noqa: N802,A002
        return self.fake.delete_profiles(input)


def _error(message: str, field: str, code: str) -> dict:
    return {"message": message, "path": [field], "extensions": {"code": code}}


def _formatted(err: GraphQLError, code: str) -> dict:
    formatted = err.formatted
    formatted.setdefault("extensions", {}).setdefault("code", code)
    return formatted


def _profile_problem(profile: object) -> str | None:
    if not isinstance(profile, dict):
        return "profile must be an object"
    if not isinstance(profile.get("email"), str) or "@" not in profile["email"]:
        return "email is required"
    for key in ("userId", "audienceId", "audienceName"):
        if not isinstance(profile.get(key), str) or not profile[key]:
            return f"{key} is required"
    if profile.get("action") not in ("enter", "exit"):
        return "action must be enter or exit"
    return None
