"""JSON request bodies decoded the way GoTrue's Go structs decode them.

GoTrue reads every body with `encoding/json` into a params struct (`retrieveRequestParams`): the
body must be a JSON object (`null` counts as an empty one); keys match fields exactly or, failing
that, case-insensitively; the last duplicate wins; `null` leaves a string or boolean field unset
and resets a map or pointer; a value of the wrong JSON type is `bad_json`. Invalid UTF-8 and lone
surrogate escapes become U+FFFD, as in Go. `NaN`/`Infinity` and numbers beyond float64 are
`bad_json`; so is nesting too deep to decode. A body over the size limit is
`request_entity_too_large`.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from typing import Final, final

import attrs

from madbase.protocol.auth.errors import BadJson, RequestEntityTooLarge
from madbase.protocol.auth.limits import AuthLimits
from madbase.protocol.http.messages import JsonValue

__all__ = ["FieldKind", "Fields", "decode_fields", "parse_json_object"]

JsonObject = dict[str, JsonValue]

_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# float64 overflows past ~1.8e308: an integer literal with more digits cannot be a Go number.
_MAX_INT_DIGITS: Final = 309


class _Object(dict[str, JsonValue]):
    """A decoded JSON object that remembers its members in order, duplicates included."""

    def __init__(self, pairs: list[tuple[str, JsonValue]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _reject_constant(name: str) -> JsonValue:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _parse_int(text: str) -> JsonValue:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"cannot unmarshal number {text[:20]}... into Go value of type float64")
    return int(text)


def _parse_float(text: str) -> JsonValue:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"cannot unmarshal number {text[:20]} into Go value of type float64")
    return value


def _replace_lone_surrogates(value: JsonValue) -> JsonValue:
    """`value` with every lone surrogate in strings and keys replaced by U+FFFD (no recursion)."""

    def fix(text: str) -> str:
        return _LONE_SURROGATE.sub("\ufffd", text)

    root: list[JsonValue] = [value]
    stack: list[list[JsonValue] | _Object] = [root]
    while stack:
        container = stack.pop()
        if isinstance(container, list):
            for i, item in enumerate(container):
                if isinstance(item, str):
                    container[i] = fix(item)
                elif isinstance(item, list | _Object):
                    stack.append(item)
            continue
        pairs: list[tuple[str, JsonValue]] = []
        for key, item in container.pairs:
            if isinstance(item, str):
                item = fix(item)
            elif isinstance(item, list | _Object):
                stack.append(item)
            pairs.append((fix(key), item))
        container.pairs = pairs
        container.clear()
        container.update(pairs)
    return root[0]


def _decode(body: bytes, limits: AuthLimits) -> JsonValue:
    if len(body) > limits.max_body_bytes:
        raise RequestEntityTooLarge(f"Request body too large (max {limits.max_body_bytes} bytes)")
    text = body.decode("utf-8", "replace")
    try:
        value: JsonValue = json.loads(
            text,
            object_pairs_hook=_Object,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except RecursionError:
        raise BadJson("Could not parse request body as JSON: exceeded max depth") from None
    except ValueError as err:
        raise BadJson(f"Could not parse request body as JSON: {err}") from None
    if _SURROGATE_ESCAPE.search(text):
        value = _replace_lone_surrogates(value)
    return value


def _json_kind(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def parse_json_object(body: bytes, *, limits: AuthLimits) -> JsonObject:
    """The body as a JSON object with Go's last-duplicate-wins rule (`null` is `{}`).

    >>> parse_json_object(b'{"a": 1, "a": 2}', limits=AuthLimits())
    {'a': 2}

    Raises:
        RequestEntityTooLarge: the body is larger than `limits.max_body_bytes`.
        BadJson: not JSON, or JSON but not an object.
    """
    value = _decode(body, limits)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadJson(
            f"Could not parse request body as JSON: json: cannot unmarshal {_json_kind(value)}"
            " into Go value of type object"
        )
    return dict(value)


class FieldKind(enum.Enum):
    STRING = "string"
    BOOL = "bool"
    MAP = "map[string]interface {}"
    OPTIONAL_STRING = "*string"  # a pointer: `null` resets it
    UUID = "uuid.UUID"


@final
@attrs.frozen
class Fields:
    """The decoded fields of one Go params struct."""

    values: dict[str, JsonValue]

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return value if isinstance(value, str) else ""

    def optional_text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def flag(self, name: str, *, default: bool = False) -> bool:
        value = self.values.get(name, default)
        return value if isinstance(value, bool) else default

    def mapping(self, name: str) -> JsonObject | None:
        value = self.values.get(name)
        return dict(value) if isinstance(value, dict) else None


def decode_fields(
    body: bytes, limits: AuthLimits, struct: str, spec: dict[str, FieldKind]
) -> Fields:
    value = _decode(body, limits)
    if value is None:
        return Fields({})
    if not isinstance(value, _Object):
        raise BadJson(
            f"Could not parse request body as JSON: json: cannot unmarshal {_json_kind(value)}"
            f" into Go value of type api.{struct}"
        )
    folded = {name.casefold(): name for name in spec}
    values: dict[str, JsonValue] = {}
    for key, item in value.pairs:
        name = key if key in spec else folded.get(key.casefold())
        if name is None:
            continue
        kind = spec[name]
        if item is None:
            if kind in (FieldKind.MAP, FieldKind.OPTIONAL_STRING):
                values.pop(name, None)
            continue
        ok = {
            FieldKind.STRING: isinstance(item, str),
            FieldKind.OPTIONAL_STRING: isinstance(item, str),
            FieldKind.BOOL: isinstance(item, bool),
            FieldKind.MAP: isinstance(item, dict),
            FieldKind.UUID: isinstance(item, str),
        }[kind]
        if not ok:
            raise BadJson(
                f"Could not parse request body as JSON: json: cannot unmarshal {_json_kind(item)}"
                f" into Go struct field {struct}.{key} of type {kind.value}"
            )
        if kind is FieldKind.UUID:
            assert isinstance(item, str)
            item = _parse_uuid(item, struct, key)
        values[name] = item
    return Fields(values)


def _parse_uuid(text: str, struct: str, key: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise BadJson(
            f"Could not parse request body as JSON: uuid: incorrect UUID format in {struct}.{key}"
        ) from None
