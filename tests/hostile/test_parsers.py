"""Hypothesis properties of the input parsers: phone numbers/JIDs, instance ids, idempotency keys."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from leadmaster.contract.ids import IDEMPOTENCY_KEY_MAX, is_valid_idempotency_key, is_valid_instance_id
from leadmaster.session_manager.parsing import parse_phone, parse_to

FAST = settings(max_examples=300, deadline=None)
ascii_digits = st.text(alphabet="0123456789", min_size=7, max_size=15)
hostile_text = st.text(st.characters(codec="utf-8"), max_size=80) | st.binary(max_size=40).map(
    lambda b: b.decode("latin-1"))


@FAST
@given(ascii_digits, st.booleans())
def test_every_valid_number_parses_to_its_user_jid(digits: str, plus: bool) -> None:
    assert parse_to(("+" if plus else "") + digits) == f"{digits}@s.whatsapp.net"
    assert parse_phone(("+" if plus else "") + digits) == digits


@FAST
@given(ascii_digits, st.sampled_from(["s.whatsapp.net", "c.us"]))
def test_user_jids_parse_to_the_canonical_jid(digits: str, server: str) -> None:
    assert parse_to(f"{digits}@{server}") == f"{digits}@s.whatsapp.net"
    assert parse_phone(f"{digits}@{server}") is None


@FAST
@given(hostile_text)
def test_anything_else_is_refused_and_never_raises(value: str) -> None:
    ok = re.fullmatch(r"\+?[0-9]{7,15}|[0-9]{7,15}@(s\.whatsapp\.net|c\.us)", value) is not None
    assert (parse_to(value) is not None) == ok
    jid = parse_to(value)
    if jid is not None:  # the result is always a plain ASCII user JID
        assert re.fullmatch(r"[0-9]{7,15}@s\.whatsapp\.net", jid)


@FAST
@given(st.one_of(st.integers(), st.floats(), st.none(), st.booleans(), st.lists(st.integers())))
def test_non_strings_are_refused(value: object) -> None:
    assert parse_to(value) is None and parse_phone(value) is None


@FAST
@given(st.text(alphabet="٠١٢٣٤٥٦٧٨٩０１２３４５６７８９", min_size=7, max_size=15))
def test_other_scripts_digits_are_not_phone_numbers(value: str) -> None:
    assert parse_to(value) is None


@FAST
@given(hostile_text)
def test_instance_ids_follow_the_contract_regex(value: str) -> None:
    assert is_valid_instance_id(value) == (re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value, re.ASCII) is not None)


@FAST
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=300))
def test_idempotency_keys_are_1_to_255_printable_ascii(value: str) -> None:
    expected = 0 < len(value) <= IDEMPOTENCY_KEY_MAX and all(33 <= ord(c) <= 126 for c in value)
    assert is_valid_idempotency_key(value) == expected
