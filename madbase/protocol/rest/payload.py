"""Request bodies of writes: JSON, CSV and form bodies to one JSON text (PostgREST `Payload.hs`).

Whatever the `Content-Type`, the planner binds ONE JSON text (an object, or an array of objects)
that Postgres expands against the relation's row type, and writes the columns PostgREST would:

| body | rows | columns |
|---|---|---|
| `application/json` object | one | its keys |
| `application/json` array of objects | each | the first object's keys; every object must have the same keys ("All object keys must match") unless `columns=` is given |
| `application/json` scalar (`5`, `"x"`, `null`) | none | none (PostgREST truncates it to `[]`) |
| `text/csv` | one per line after the header | the header's names; the text `NULL` is SQL NULL; a line with fewer fields → "All lines must have same number of fields" (extra fields are dropped, as cassava's zip does) |
| `application/x-www-form-urlencoded` | one | the form's keys (the last of a repeated key wins); values are strings |

`columns=` replaces the column list. Bodies are refused with PGRST102 when they are not UTF-8,
not JSON, nest deeper than the parser handles, or hold strings Postgres could not store (lone
surrogates); any other `Content-Type` is "Content-Type not acceptable: <type>" (PGRST102).
"""

from __future__ import annotations

import json
from typing import Final, final
from urllib.parse import unquote_plus

import attrs

from madbase.protocol.rest.errors import ColumnNotFound, InvalidBody
from madbase.protocol.rest.headers import MediaKind, MediaType, to_mime
from madbase.protocol.rest.schema import Relation

__all__ = ["Payload", "csv_rows", "parse_csv"]

_KEYS_MUST_MATCH: Final = "All object keys must match"
_CSV_FIELDS: Final = "All lines must have same number of fields"
_CSV_NULL: Final = "NULL"


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _storable(value: object) -> bool:
    """False when a string (key or value) in `value` is not valid Unicode (a lone surrogate)."""
    stack = [value]
    try:
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                item.encode("utf-8")
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                for key, child in item.items():
                    key.encode("utf-8")
                    stack.append(child)
    except UnicodeEncodeError:
        return False
    return True


def _load_json(body: bytes) -> object:
    """The JSON value of `body`.

    Raises:
        InvalidBody: not UTF-8, not JSON (NaN and Infinity included), nested too deep, or holding
            a lone surrogate (PGRST102).
    """
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise InvalidBody from err
    if not _storable(value):
        raise InvalidBody
    return value


def parse_csv(text: str) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and the records of an RFC 4180 CSV text (`\\n` or `\\r\\n` line ends).

    Fields may be double-quoted (`""` is a quote inside); blank lines are skipped.

    >>> parse_csv('a,b\\n1,"x, ""y"" z"\\n\\n2,\\n')
    (('a', 'b'), [['1', 'x, "y" z'], ['2', '']])

    Raises:
        InvalidBody: no header line, or a quoted field that is not closed (PGRST102).
    """
    records: list[list[str]] = []
    record: list[str] = []
    field: list[str] = []
    pos, end = 0, len(text)
    while pos <= end:
        if pos < end and text[pos] == '"' and not field:
            close = pos + 1
            while True:
                close = text.find('"', close)
                if close == -1:
                    raise InvalidBody("parse error (unterminated quoted field)")
                if text.startswith('""', close):
                    close += 2
                    continue
                break
            field.append(text[pos + 1 : close].replace('""', '"'))
            pos = close + 1
            if pos < end and text[pos] not in ",\r\n":
                raise InvalidBody("parse error (unexpected character after a quoted field)")
            continue
        stop = pos
        while stop < end and text[stop] not in ',\r\n"':
            stop += 1
        if stop < end and text[stop] == '"':
            raise InvalidBody("parse error (a quote inside an unquoted field)")
        field.append(text[pos:stop])
        record.append("".join(field))
        field = []
        if stop >= end or text[stop] != ",":
            if record != [""]:  # a blank line is no record
                records.append(record)
            record = []
            if text.startswith("\r\n", stop):
                stop += 1
        pos = stop + 1
    if not records:
        raise InvalidBody("parse error (no header line)")
    return tuple(records[0]), records[1:]


def csv_rows(body: bytes) -> list[dict[str, str | None]]:
    """A CSV body as PostgREST reads it: a header line, then rows; `NULL` is null.

    Raises:
        InvalidBody: not UTF-8, no header line, or a row shorter than the header (PGRST102).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidBody("parse error (the CSV is not UTF-8)") from err
    header, records = parse_csv(text)
    rows: list[dict[str, str | None]] = []
    for record in records:
        if len(record) < len(header):
            raise InvalidBody(_CSV_FIELDS)
        rows.append(
            {
                name: None if value == _CSV_NULL else value
                for name, value in zip(header, record, strict=False)
            }
        )
    return rows


def _form_row(body: bytes) -> dict[str, str]:
    """A form body as PostgREST's `parseSimpleQuery` reads it (`&` or `;` between pairs)."""
    try:
        text = body.decode("ascii")
        row: dict[str, str] = {}
        for pair in text.removeprefix("?").replace(";", "&").split("&"):
            if pair:
                key, _, value = pair.partition("=")
                row[unquote_plus(key, errors="strict")] = unquote_plus(value, errors="strict")
    except UnicodeError as err:
        raise InvalidBody("the form body is not URL-encoded UTF-8") from err
    if "\x00" in "".join(row) + "".join(row.values()):
        raise InvalidBody("the form body holds a NUL character")
    return row


@final
@attrs.frozen(kw_only=True)
class Payload:
    """A body checked against a relation: the JSON text to bind and the columns it writes."""

    text: str
    columns: tuple[str, ...]
    is_array: bool

    @classmethod
    def parse(
        cls,
        body: bytes,
        relation: Relation,
        columns: tuple[str, ...] | None,
        *,
        array_ok: bool,
        content_type: MediaType | None = None,
    ) -> Payload:
        """Check `body` of type `content_type` (JSON when None) for a write to `relation`.

        `array_ok` is False for PATCH and PUT, which take one object.

        Raises:
            InvalidBody: a body PostgREST refuses (PGRST102, see the module docstring).
            ColumnNotFound: a column the relation does not have (PGRST204).
        """
        kind = MediaKind.JSON if content_type is None else content_type.kind
        value: object
        if kind is MediaKind.JSON:
            value = _load_json(body)
        elif kind is MediaKind.CSV:
            value = csv_rows(body)
            if not array_ok:
                raise InvalidBody("a CSV body is an array of rows: send one JSON object")
        elif kind is MediaKind.URLENCODED:
            value = _form_row(body)
        else:
            assert content_type is not None
            raise InvalidBody(f"Content-Type not acceptable: {to_mime(content_type)}")
        if isinstance(value, list) and not array_ok:
            raise InvalidBody(details="the body must be a JSON object")
        verbatim = kind is MediaKind.JSON and isinstance(value, list | dict)
        if not isinstance(value, list | dict):
            value = []  # PostgREST truncates any other JSON value to an empty array
        rows = value if isinstance(value, list) else [value]
        if not all(isinstance(row, dict) for row in rows):
            raise InvalidBody(_KEYS_MUST_MATCH)
        if columns is None:
            keys = tuple(rows[0]) if rows else ()
            first = set(keys)
            if any(set(row) != first for row in rows[1:]):
                raise InvalidBody(_CSV_FIELDS if kind is MediaKind.CSV else _KEYS_MUST_MATCH)
            columns = keys
        for name in columns:
            if relation.column(name) is None:
                raise ColumnNotFound.in_relation(relation.name.name, name)
        text = (
            body.decode("utf-8")
            if verbatim
            else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        )
        return cls(text=text, columns=columns, is_array=isinstance(value, list))
