"""The lexical layer every query-parameter grammar shares: names, quoted text, JSON paths, errors.

PostgREST writes its grammar with Parsec; this is a hand-written recursive-descent equivalent.
A `Scanner` walks one parameter value; `Scanner.fail` raises `_Failure` carrying the position, and
`Scanner.run` turns it into `QueryParamError` with PostgREST's message shape::

    "failed to parse select parameter (id,,name)" (line 1, column 4)
    details: unexpected "," expecting field name (* or [a..z0..9_$])

Positions count as Parsec does: lines split on newline, a tab moves to the next multiple of 8.

Names (`pFieldName`): a double-quoted string with backslash escapes, or runs of letters, digits,
`_`, `$` and spaces (stripped) joined by `-` not followed by `>`. JSON keys allow any character
but `(-:.,>)` (stripped), again dash-joined, or a quoted string; an operand of digits with an
optional `-` is an array index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NoReturn, TypeVar, final

from madbase.protocol.rest.errors import QueryParamError
from madbase.protocol.rest.syntax import Arrow, Field, JsonStep

__all__ = ["Scanner", "haskell_show", "render_field", "render_key", "render_name"]

T = TypeVar("T")

WS: Final = " \t"
_DIGITS: Final = "0123456789"
_NOT_KEY: Final = frozenset("(-:.,>)")
FIELD_NAME: Final = "field name (* or [a..z0..9_$])"


def is_ident_char(char: str) -> bool:
    """Parsec's `letter <|> digit <|> oneOf "_ $"` (letters are Unicode, digits ASCII)."""
    return char.isalpha() or char in "0123456789_ $"


class _Failure(Exception):
    def __init__(
        self, pos: int, expecting: str, unexpected: str | None, details: str | None = None
    ) -> None:
        super().__init__(expecting)
        self.pos = pos
        self.expecting = expecting
        self.unexpected = unexpected
        self.details = details


def haskell_show(text: str) -> str:
    """`text` as Haskell's `show` prints a string (PostgREST's messages embed it so).

    >>> haskell_show('a"b\\u00e9')
    '"a\\\\"b\\\\233"'
    """
    out = ['"']
    for i, char in enumerate(text):
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code == 10:
            out.append("\\n")
        elif code < 0x20 or code >= 0x7F:
            out.append(f"\\{code}")
            if i + 1 < len(text) and text[i + 1] in _DIGITS:
                out.append("\\&")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _line_column(text: str, pos: int) -> tuple[int, int]:
    line, column = 1, 1
    for char in text[:pos]:
        if char == "\n":
            line, column = line + 1, 1
        elif char == "\t":
            column += 8 - (column - 1) % 8
        else:
            column += 1
    return line, column


@final
class Scanner:
    """A cursor over one parameter value; `label` names it in error messages."""

    __slots__ = ("label", "pos", "text")

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.pos = 0

    def run(self, parse: Callable[[Scanner], T]) -> T:
        """`parse(self)`, which must consume everything, with failures as `QueryParamError`.

        Raises:
            QueryParamError: the text does not parse (PGRST100).
        """
        try:
            value = parse(self)
            if self.pos != len(self.text):
                self.fail("end of input")
        except _Failure as failure:
            line, column = _line_column(self.text, failure.pos)
            raise QueryParamError(
                f"{haskell_show(self.label)} (line {line}, column {column})",
                details=self._details(failure),
            ) from None
        return value

    def _details(self, failure: _Failure) -> str:
        if failure.details is not None:
            return failure.details
        unexpected = failure.unexpected
        if unexpected is None:
            if failure.pos >= len(self.text):
                unexpected = "end of input"
            else:
                unexpected = haskell_show(self.text[failure.pos])
        return f"unexpected {unexpected} expecting {failure.expecting}"

    # -- primitives -----------------------------------------------------------------------------

    def fail(
        self, expecting: str, *, pos: int | None = None, unexpected: str | None = None
    ) -> NoReturn:
        """Stop: `expecting` was expected at `pos` (default: here)."""
        raise _Failure(self.pos if pos is None else pos, expecting, unexpected)

    def too_deep(self, what: str, limit: int) -> NoReturn:
        """Stop: `what` nests deeper than `limit` levels (our limit; PostgREST has none)."""
        raise _Failure(self.pos, "", None, f"{what} nested deeper than {limit} levels")

    def at_end(self) -> bool:
        """Whether everything was consumed."""
        return self.pos >= len(self.text)

    def peek(self) -> str:
        """The next character, or "" at the end."""
        return self.text[self.pos : self.pos + 1]

    def looking_at(self, token: str) -> bool:
        """Whether the text continues with `token`."""
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        """Consume `token` if the text continues with it."""
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        """Consume `token` or fail."""
        if not self.take(token):
            self.fail(haskell_show(token))

    def skip_ws(self) -> None:
        """Skip spaces and tabs (Parsec `ws`)."""
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in WS:
            pos += 1
        self.pos = pos

    # -- lexemes --------------------------------------------------------------------------------

    def quoted(self) -> str:
        """A double-quoted string at the cursor; a backslash escapes any character."""
        self.expect('"')
        out: list[str] = []
        text = self.text
        pos = self.pos
        while True:
            if pos >= len(text):
                self.fail('"\\"" (end of quoted text)', pos=pos)
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return "".join(out)
            if char == "\\":
                if pos + 1 >= len(text):
                    self.fail("escaped character", pos=pos + 1)
                out.append(text[pos + 1])
                pos += 2
                continue
            # Copy the run of ordinary characters in one slice (long quoted values stay linear).
            end = pos
            while end < len(text) and text[end] not in '"\\':
                end += 1
            out.append(text[pos:end])
            pos = end

    def try_quoted(self, followers: str) -> str | None:
        """A quoted string followed by one of `followers` or the end; else None, nothing consumed.

        Parsec's `try (pQuotedValue <* notFollowedBy (noneOf followers))`.
        """
        start = self.pos
        try:
            value = self.quoted()
        except _Failure:
            self.pos = start
            return None
        if self.pos < len(self.text) and self.text[self.pos] not in followers:
            self.pos = start
            return None
        return value

    def identifier(self, what: str = FIELD_NAME) -> str:
        """A run of identifier characters, stripped of spaces (Parsec `pIdentifier`)."""
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and is_ident_char(text[pos]):
            pos += 1
        if pos == start:
            self.fail(what)
        self.pos = pos
        return text[start:pos].strip(" ")

    def _dash(self) -> bool:
        """Consume a `-` that is not the start of `->`."""
        if self.looking_at("-") and not self.looking_at("->"):
            self.pos += 1
            return True
        return False

    def field_name(self) -> str:
        """A quoted name, or identifiers joined by dashes (`pFieldName`)."""
        if self.peek() == '"':
            return self.quoted()
        parts = [self.identifier()]
        while self._dash():
            parts.append(self.identifier())
        return "-".join(parts)

    def try_field_name(self) -> str | None:
        """A field name, or None with nothing consumed."""
        start = self.pos
        try:
            return self.field_name()
        except _Failure:
            self.pos = start
            return None

    def _key_run(self) -> str:
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and text[pos] not in _NOT_KEY:
            pos += 1
        if pos == start:
            self.fail("any non reserved character different from: .,>()")
        self.pos = pos
        return text[start:pos].strip()

    def _json_operand(self) -> str | int:
        text, start = self.text, self.pos
        pos = start
        negative = pos < len(text) and text[pos] == "-"
        if negative:
            pos += 1
        digits_start = pos
        while pos < len(text) and text[pos] in _DIGITS:
            pos += 1
        if negative and pos == digits_start:
            self.fail("digit", pos=pos)
        if pos > digits_start:
            # An index ends where a key could not go on (`->`, `::`, `.`, `,`, `)`, blanks, end).
            nxt = text[pos : pos + 1]
            ends = (
                nxt == ""
                or (nxt in _NOT_KEY and (nxt != "-" or text.startswith("->", pos)))
                or nxt.isspace()
            )
            if ends:
                self.pos = pos
                return int(text[start:pos])
            if negative:
                self.fail('digit, "->", "::", ".", "," or end of input', pos=pos)
        if self.peek() == '"':
            return self.quoted()
        parts = [self._key_run()]
        while self._dash():
            parts.append(self._key_run())
        return "-".join(parts)

    def json_path(self) -> tuple[JsonStep, ...]:
        """Zero or more `->operand` / `->>operand` steps."""
        steps: list[JsonStep] = []
        while True:
            if self.take("->>"):
                arrow = Arrow.TEXT
            elif self.take("->"):
                arrow = Arrow.JSON
            else:
                return tuple(steps)
            steps.append(JsonStep(arrow=arrow, operand=self._json_operand()))

    def field(self) -> Field:
        """Blanks, a name, its JSON path, blanks (`pField`)."""
        self.skip_ws()
        name = self.field_name()
        path = self.json_path()
        self.skip_ws()
        return Field(name=name, json_path=path)

    def cast(self) -> str:
        """The type after `::`: identifier characters (`double precision`), not blank."""
        start = self.pos
        name = self.identifier("letter or digit")
        if not name:
            self.fail("type name", pos=start)
        return name


# --- rendering -------------------------------------------------------------------------------


def quote(text: str) -> str:
    """`text` double-quoted with backslash escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bare_segment(segment: str) -> bool:
    return (
        segment != ""
        and segment == segment.strip(" ")
        and all(is_ident_char(char) for char in segment)
    )


def render_name(name: str) -> str:
    """`name` as `field_name` reads it back: bare when it can be, else quoted.

    >>> render_name("full_name"), render_name("my-col"), render_name("a.b")
    ('full_name', 'my-col', '"a.b"')
    """
    if all(_bare_segment(part) for part in name.split("-")):
        return name
    return quote(name)


def render_key(key: str | int) -> str:
    """A JSON path operand as `_json_operand` reads it back."""
    if isinstance(key, int):
        return str(key)
    parts = key.split("-")
    if (
        all(part and part == part.strip() and not (_NOT_KEY & set(part)) for part in parts)
        and '"' not in key[:1]
        and not key.lstrip("-").isdigit()
        and not key[:1].isdigit()
    ):
        return key
    return quote(key)


def render_field(field: Field) -> str:
    """`name->path->>path`."""
    out = [render_name(field.name)]
    for step in field.json_path:
        out.append(step.arrow.value)
        out.append(render_key(step.operand))
    return "".join(out)
