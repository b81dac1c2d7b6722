"""A fake of StackAdapt's GraphQL API (``POST /graphql``), parsing documents with graphql-core.

Enforced as partners/stackadapt.md says. Observed/documented, by default: bearer token (401 with
``errors[].extensions.code`` UNAUTHENTICATED), body keys limited to query/variables/operationName
(400 otherwise), ``tokenInfo`` scopes, the three sync mutations with their exact input fields and
types (enum ``type`` values unquoted), the profiles JSON string with ``email`` required and
``action`` enter/exit (``userErrors`` with ``path`` ["profiles", index] for bad profiles, HTTP 200),
``syncId`` as a batch dedupe key. Assumed, configurable: ``max_profiles`` per request (1000), the
rate limit (off unless ``rate_limit``), 429 without ``Retry-After``, FORBIDDEN for an advertiser
the token may not write.
"""
from __future__ import annotations

import json
import re

from graphql import GraphQLError, parse
from graphql.language import EnumValueNode, FieldNode, ObjectValueNode, OperationDefinitionNode, ValueNode
from graphql.utilities import value_from_ast_untyped
from werkzeug.wrappers import Request, Response

from tests.fakes.partners.server import FakePartner, check_fields, json_response

MAPPING_V2 = {"incomingKey": str, "destinationKey": str, "label": str, "type": str, "isPii": bool}
AUDIENCE_MAPPING = {"incomingKey": str, "destinationKey": str, "label": str, "type": str, "isPii": bool}
TYPES = {"STRING", "NUMBER", "BOOLEAN", "DATE"}
ID = (int, str)


class _BadInput(Exception):
    def __init__(self, message: str, code: str = "BAD_USER_INPUT"):
        super().__init__(message)
        self.code = code


class FakeStackAdapt(FakePartner):
    send_retry_after = False

    def __init__(self, *, token: str = "sa-gql-s3cret-token", advertiser_id: str = "9001",
                 scopes: tuple[str, ...] = ("READ", "WRITE"), max_profiles: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.token, self.advertiser_id, self.scopes = token, advertiser_id, list(scopes)
        self.max_profiles = max_profiles
        self.profiles: dict[tuple[str, str], dict] = {}
        self.memberships: dict[str, set[str]] = {}
        self.profile_mappings: list[dict] = []
        self.audience_mappings: list[dict] = []
        self.sync_ids: set[str] = set()

    @staticmethod
    def profiles_in(record) -> int | None:
        """How many profiles a recorded request carried (None when it carried none)."""
        query = (record.json or {}).get("query", "")
        if "upsertProfiles" not in query:
            return None
        for definition in parse(query).definitions:
            for selection in definition.selection_set.selections or ():
                if selection.name.value == "upsertProfiles":
                    value = value_from_ast_untyped(selection.arguments[0].value, {})
                    return len(json.loads(value["profiles"]))
        return None

    def audience_members(self, audience_id: str) -> set[str]:
        with self.lock:
            return set(self.memberships.get(audience_id, set()))

    def error(self, status: int, message: str) -> Response:
        code = {401: "UNAUTHENTICATED", 429: "RATE_LIMITED", 400: "BAD_REQUEST"}.get(status, "INTERNAL")
        return json_response({"errors": [{"message": message, "extensions": {"code": code}}]}, status)

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
        try:
            document = parse(body["query"])
        except GraphQLError as err:
            return self.error(400, f"Syntax Error: {err.message}")
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1:
            return self.error(400, "exactly one operation expected")
        variables = body.get("variables") or {}
        # Like a real GraphQL server: validate the whole document first, execute nothing if invalid.
        plan, errors = [], []
        for selection in operations[0].selection_set.selections:
            if not isinstance(selection, FieldNode):
                continue
            name = selection.name.value
            handler = getattr(self, f"_{operations[0].operation.value}_{name}", None)
            try:
                if handler is None:
                    raise _BadInput(f"Cannot query field '{name}'", "GRAPHQL_VALIDATION_FAILED")
                args = {a.name.value: a.value for a in selection.arguments or ()}
                value = self._validate(name, args, variables)
            except _BadInput as err:
                errors.append({"message": str(err), "path": [name], "extensions": {"code": err.code}})
                continue
            plan.append(((selection.alias or selection.name).value, name, handler, value))
        if errors:
            return json_response({"errors": errors})
        data = {}
        for alias, name, handler, value in plan:
            try:
                data[alias] = handler(value)
            except _BadInput as err:
                data[alias] = None
                errors.append({"message": str(err), "path": [name], "extensions": {"code": err.code}})
        answer: dict = {"data": data}
        if errors:
            answer["errors"] = errors
        return json_response(answer)

    # -- operations ----------------------------------------------------------------------
    def _query_tokenInfo(self, value: None) -> dict:
        node = {"advertiser": {"name": f"Advertiser {self.advertiser_id}"}, "scopes": self.scopes}
        return {"scopesByAdvertiser": {"nodes": [node]}}

    def _validate(self, name: str, args: dict[str, ValueNode], variables: dict) -> dict | None:
        """Static checks of one field's arguments against the documented input types."""
        if name == "tokenInfo":
            if args:
                raise _BadInput("tokenInfo takes no arguments", "GRAPHQL_VALIDATION_FAILED")
            return None
        spec, mapping = INPUTS[name]
        if set(args) != {"input"}:
            raise _BadInput(f"expected exactly the argument 'input', got {sorted(args)}", "GRAPHQL_VALIDATION_FAILED")
        _require_enum_types(args["input"])
        value = value_from_ast_untyped(args["input"], variables)
        problem = check_fields(value, spec, where="input")
        if problem:
            raise _BadInput(problem, "GRAPHQL_VALIDATION_FAILED")
        if mapping:
            key, entry_spec, optional = mapping
            for index, entry in enumerate(value[key]):
                problem = check_fields(entry, entry_spec, optional=optional, where=f"{key}[{index}]")
                if problem or entry["type"] not in TYPES:
                    raise _BadInput(problem or f"{key}[{index}].type must be one of {sorted(TYPES)}",
                                    "GRAPHQL_VALIDATION_FAILED")
        return value

    def _authorized(self, value: dict) -> None:
        if str(value["advertiserId"]) != self.advertiser_id or "WRITE" not in self.scopes:
            raise _BadInput("not allowed to write for this advertiser", "FORBIDDEN")

    def _mutation_upsertProfileMapping(self, value: dict) -> dict:
        self._authorized(value)
        with self.lock:
            self.profile_mappings.append(value)
        return {"userErrors": []}

    def _mutation_upsertExternalAudienceMapping(self, value: dict) -> dict:
        self._authorized(value)
        with self.lock:
            self.audience_mappings.append(value)
        return {"userErrors": []}

    def _mutation_upsertProfiles(self, value: dict) -> dict:
        self._authorized(value)
        if not re.fullmatch(r"[0-9a-f]{64}", value["syncId"]):
            raise _BadInput("syncId must be a SHA-256 hex digest")
        try:
            profiles = json.loads(value["profiles"])
        except ValueError:
            raise _BadInput("profiles is not a JSON array") from None
        if not isinstance(profiles, list):
            raise _BadInput("profiles is not a JSON array")
        if len(profiles) > self.max_profiles:
            raise _BadInput(f"at most {self.max_profiles} profiles per request")
        with self.lock:
            if value["syncId"] in self.sync_ids:
                return {"userErrors": []}  # the same batch again: already applied
            self.sync_ids.add(value["syncId"])
            user_errors = []
            for index, profile in enumerate(profiles):
                problem = _profile_problem(profile)
                if problem:
                    user_errors.append({"message": problem, "path": ["profiles", index]})
                    continue
                self.profiles[(str(value["advertiserId"]), profile["userId"])] = profile
                members = self.memberships.setdefault(profile["audienceId"], set())
                if profile["action"] == "enter":
                    members.add(profile["userId"])
                else:
                    members.discard(profile["userId"])
        return {"userErrors": user_errors}


INPUTS = {
    "upsertProfileMapping": (
        {"advertiserId": ID, "mappingSchemaV2": list, "isOptedIn": bool, "mappableType": str},
        ("mappingSchemaV2", MAPPING_V2, frozenset()),
    ),
    "upsertExternalAudienceMapping": (
        {"advertiserId": ID, "mappingSchema": list, "mappableType": str},
        ("mappingSchema", AUDIENCE_MAPPING, frozenset({"label", "isPii"})),
    ),
    "upsertProfiles": ({"advertiserId": ID, "externalProvider": str, "syncId": str, "profiles": str}, None),
}


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


def _require_enum_types(node: ValueNode) -> None:
    """Mapping ``type`` values are GraphQL enums: a quoted "STRING" is a type error."""
    if isinstance(node, ObjectValueNode):
        for field in node.fields:
            if field.name.value == "type" and not isinstance(field.value, EnumValueNode):
                raise _BadInput("type must be an enum value (STRING, NUMBER, BOOLEAN, DATE)",
                                "GRAPHQL_VALIDATION_FAILED")
            _require_enum_types(field.value)
    for child in getattr(node, "values", None) or ():
        _require_enum_types(child)
