"""OpenAPI output that does not depend on the Python version generating it.

flask-smorest names response components after ``http.HTTPStatus(code).name`` and describes responses
with ``HTTPStatus(code).phrase``. Python 3.13 adopted the RFC 9110 wording, so 413, 414, 416 and 422
changed names (``UNPROCESSABLE_ENTITY`` became ``UNPROCESSABLE_CONTENT``) and the committed document
drifted with the interpreter. :class:`StableSpec` renames those components to fixed names of our own
(``Problem422`` …) and uses the RFC 9110 phrases on every interpreter.
"""
from __future__ import annotations

import http
from typing import Any

import apispec

#: RFC 9110 §15 reason phrases for the codes whose Python wording changed in 3.13.
RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}
_REF_PREFIX = "#/components/responses/"
#: Both spellings of every status name (3.11/3.12 and 3.13 aliases) → the code.
_NAME_TO_CODE: dict[str, int] = {name: int(member) for name, member in http.HTTPStatus.__members__.items()}
_NAME_TO_CODE.update({"UNPROCESSABLE_ENTITY": 422, "UNPROCESSABLE_CONTENT": 422,
                      "REQUEST_ENTITY_TOO_LARGE": 413, "CONTENT_TOO_LARGE": 413,
                      "REQUEST_URI_TOO_LONG": 414, "URI_TOO_LONG": 414,
                      "REQUESTED_RANGE_NOT_SATISFIABLE": 416, "RANGE_NOT_SATISFIABLE": 416})
_OLD_PHRASES = {"Request Entity Too Large": 413, "Request-URI Too Long": 414,
                "Requested Range Not Satisfiable": 416, "Unprocessable Entity": 422}


def component_name(name: str) -> str:
    """``UNPROCESSABLE_ENTITY`` / ``UNPROCESSABLE_CONTENT`` → ``Problem422``; other names unchanged."""
    code = _NAME_TO_CODE.get(name)
    return f"Problem{code}" if code is not None else name


def phrase(code: int) -> str:
    """The reason phrase of ``code`` as RFC 9110 words it, whatever the interpreter."""
    return RFC9110_PHRASES.get(code) or http.HTTPStatus(code).phrase


def _description(text: Any) -> Any:
    if isinstance(text, str):
        code = _OLD_PHRASES.get(text)
        if code is not None:
            return RFC9110_PHRASES[code]
    return text


def stabilize(node: Any) -> Any:
    """A copy of a spec dict with version-independent response component names and phrases."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
                out[key] = _REF_PREFIX + component_name(value[len(_REF_PREFIX):])
            elif key == "description":
                out[key] = _description(value)
            else:
                out[key] = stabilize(value)
        return out
    if isinstance(node, list):
        return [stabilize(item) for item in node]
    return node


class StableSpec(apispec.APISpec):
    """APISpec whose ``to_dict`` is the same on Python 3.11, 3.12 and 3.13."""

    def to_dict(self) -> dict[str, Any]:
        spec = stabilize(super().to_dict())
        responses = spec.get("components", {}).get("responses")
        if isinstance(responses, dict):
            spec["components"]["responses"] = {component_name(k): v for k, v in responses.items()}
        return spec
