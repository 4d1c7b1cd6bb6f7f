"""SQL quoting and the statement bundles the runtime executes."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.sql import Statement, Transaction, quote_ident, quote_literal

no_nul_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("todos", '"todos"'),
        ("", '""'),
        ("Mixed Case", '"Mixed Case"'),
        ('a"b', '"a""b"'),
        ('"', '""""'),
        ('""', '""""""'),
        ("x'; drop table t; --", '"x\'; drop table t; --"'),
        ("a\\b", '"a\\b"'),
        ("émoji🎉", '"émoji🎉"'),
        ("new\nline", '"new\nline"'),
    ],
)
def test_quote_ident_doubles_quotes(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize("name", ["\x00", "a\x00b", 'x"\x00'])
def test_quote_ident_refuses_nul(name: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_ident(name)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "'plain'"),
        ("", "''"),
        ("it's", "'it''s'"),
        ("''", "''''''"),
        ('say "hi"', "'say \"hi\"'"),
        ("back\\slash", "E'back\\\\slash'"),
        ("\\'", "E'\\\\'''"),
        ("€ 10", "'€ 10'"),
    ],
)
def test_quote_literal_escapes_quotes_and_backslashes(value: str, quoted: str) -> None:
    assert quote_literal(value) == quoted


@pytest.mark.parametrize("value", ["\x00", "a\x00", "\\\x00"])
def test_quote_literal_refuses_nul(value: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_literal(value)


def test_statement_defaults_to_no_params() -> None:
    statement = Statement("select 1")
    assert statement.sql == "select 1"
    assert statement.params == ()
    assert Statement("select $1, $2", ("a", None)).params == ("a", None)


def test_transaction_defaults_commit_read_write() -> None:
    tx = Transaction()
    assert tx.settings == ()
    assert tx.statements == ()
    assert tx.read_only is False
    assert tx.rollback is False


def test_transaction_is_frozen_value() -> None:
    tx = Transaction(
        settings=(("role", "anon"),),
        statements=(Statement("select $1", ("x",)),),
        read_only=True,
    )
    assert tx == Transaction(
        settings=(("role", "anon"),),
        statements=(Statement("select $1", ("x",)),),
        read_only=True,
    )
    assert hash(tx) == hash(attrs.evolve(tx))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tx.rollback = True  # type: ignore[misc]
    assert attrs.evolve(tx, rollback=True).rollback is True


def _unquote_ident(quoted: str) -> str:
    assert quoted.startswith('"')
    assert quoted.endswith('"')
    return quoted[1:-1].replace('""', '"')


def _unquote_literal(quoted: str) -> str:
    escaped = quoted.startswith("E")
    body = quoted[2:-1] if escaped else quoted[1:-1]
    assert quoted.endswith("'")
    body = body.replace("''", "'")
    return body.replace("\\\\", "\\") if escaped else body


@given(no_nul_text)
@example('"')
@example('a""b')
def test_quote_ident_round_trips(name: str) -> None:
    quoted = quote_ident(name)
    inner = quoted[1:-1]
    # Every quote inside is doubled: no lone quote can end the identifier early.
    assert inner.replace('""', "").count('"') == 0
    assert _unquote_ident(quoted) == name


@given(no_nul_text)
@example("\\'")
@example("''\\\\")
def test_quote_literal_round_trips(value: str) -> None:
    quoted = quote_literal(value)
    assert quoted.startswith("E") == ("\\" in value)
    assert _unquote_literal(quoted) == value


@given(st.text())
def test_quote_functions_accept_or_raise_value_error(text: str) -> None:
    for quote in (quote_ident, quote_literal):
        try:
            quote(text)
        except ValueError:
            assert "\x00" in text
