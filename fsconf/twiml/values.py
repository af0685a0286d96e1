"""Typed parsers for TwiML attribute values and texts.

Theory of operation
-------------------
Each parser takes one raw string, exactly as lxml returns it, and returns a
typed value or raises :class:`InvalidValue`. The parsers know nothing about
elements or lines: the schema layer catches :class:`InvalidValue` and re-raises
a :class:`~fsconf.errors.TwimlError` that names the element, the attribute and
the line. So every parser stays a small pure function that can be tested alone.

Invariants of the values that come out of here:

* no string contains a control character (C0, DEL, C1), except tab, CR and LF
  in texts that are spoken (``<Say>``), where they are harmless whitespace;
* every URL is absolute, http or https, with a host, and contains only
  RFC 3986 characters (spaces and non-ASCII are percent-encoded), so it can
  never split an argument list further down the line;
* every integer was written as plain decimal digits and lies inside its range.

Booleans and HTTP methods are case-insensitive, as Twilio accepts ``TRUE`` and
``get``; the other enumerations are compared exactly as Twilio spells them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Final, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from fsconf.errors import TwimlError
from fsconf.twiml.errors import SCHEMA_VALIDATION

E = TypeVar("E", bound=StrEnum)

#: Twilio bounds friendly names and participant labels at 128 characters.
MAX_LABEL_LENGTH: Final = 128
#: Twilio's documented limit on the text of one <Say>.
MAX_SAY_LENGTH: Final = 4096
#: Our own cap on any URL and on any attribute value: far above anything a real
#: application sends, low enough that a hostile value cannot bloat logs or rows.
MAX_URL_LENGTH: Final = 4096
MAX_ATTRIBUTE_LENGTH: Final = 4096
#: Nine digits hold every range we accept and keep int() away from huge inputs.
_MAX_DIGITS: Final = 9

_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9]+")
# Characters RFC 3986 allows verbatim in a URL; "%" stays so that an already
# encoded URL is not encoded twice.
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%~-._"
_SPOKEN_WHITESPACE: Final = frozenset("\t\n\r")


class InvalidValue(TwimlError):
    """A value failed its parser; the schema layer adds element and line."""

    def __init__(self, reason: str) -> None:
        super().__init__(SCHEMA_VALIDATION, reason)


def check_text(raw: str, *, allow_newlines: bool = False) -> str:
    """Refuse control characters; return ``raw`` unchanged.

    XML 1.0 already forbids most C0 characters, but ``&#10;`` and ``&#13;`` are
    legal character references in attribute values, and DEL and the C1 range
    are legal XML characters. None of them belongs in a URL, a label or a room
    name; only spoken text may keep tab/CR/LF.
    """
    for char in raw:
        if unicodedata.category(char) != "Cc":
            continue
        if allow_newlines and char in _SPOKEN_WHITESPACE:
            continue
        raise InvalidValue(f"control character U+{ord(char):04X} is not allowed")
    return raw


def check_length(raw: str, limit: int) -> str:
    """Refuse a string longer than ``limit`` characters."""
    if len(raw) > limit:
        raise InvalidValue(f"longer than {limit} characters ({len(raw)})")
    return raw


def parse_bool(raw: str) -> bool:
    """``true``/``false`` in any case (Twilio accepts ``TRUE``)."""
    lowered = raw.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise InvalidValue(f"{raw!r} is not true or false")


def enum_parser(kind: type[E], *, case_insensitive: bool = False) -> Callable[[str], E]:
    """A parser for one of ``kind``'s values, spelled as Twilio spells it."""
    by_spelling: Mapping[str, E] = {
        (member.value.lower() if case_insensitive else member.value): member for member in kind
    }

    def parse(raw: str) -> E:
        key = raw.strip()
        if case_insensitive:
            key = key.lower()
        try:
            return by_spelling[key]
        except KeyError:
            allowed = ", ".join(member.value for member in kind)
            raise InvalidValue(f"{raw!r} is not one of {allowed}") from None

    return parse


def token_set_parser(kind: type[E]) -> Callable[[str], frozenset[E]]:
    """A parser for a space-separated set of ``kind`` values.

    Twilio documents spaces as the separator; commas are accepted too because
    helper libraries and hand-written apps both produce them, and refusing a
    document Twilio may run would break the app for no safety gain.
    """
    parse_one = enum_parser(kind)

    def parse(raw: str) -> frozenset[E]:
        return frozenset(parse_one(token) for token in raw.replace(",", " ").split())

    return parse


def int_parser(minimum: int, maximum: int) -> Callable[[str], int]:
    """A parser for a decimal integer in ``[minimum, maximum]``.

    Only plain digits are accepted (no sign, no exponent, no underscores), so
    ``-1``, ``1e3`` and a 10,000-digit number are all refused before int().
    """

    def parse(raw: str) -> int:
        text = raw.strip()
        if not _DIGITS.fullmatch(text) or len(text) > _MAX_DIGITS:
            raise InvalidValue(f"{raw[:40]!r} is not an integer in {minimum}..{maximum}")
        value = int(text)
        if not minimum <= value <= maximum:
            raise InvalidValue(f"{value} is out of range {minimum}..{maximum}")
        return value

    return parse


def parse_call_sid(raw: str) -> str:
    """A Twilio Call SID: ``CA`` and 32 lowercase hex digits."""
    text = raw.strip()
    if not _CALL_SID.fullmatch(text):
        raise InvalidValue(f"{raw[:40]!r} is not a Call SID (CA + 32 hex digits)")
    return text


def parse_label(raw: str) -> str | None:
    """A participant label; the empty string means no label."""
    text = check_length(check_text(raw.strip()), MAX_LABEL_LENGTH)
    return text or None


def parse_room_name(raw: str) -> str:
    """A conference room (friendly) name: any non-empty Unicode text.

    It is user text that is stored and sent back in callbacks, never put into a
    FreeSWITCH command (the room there is our ConferenceSid).
    """
    text = check_length(check_text(raw.strip()), MAX_LABEL_LENGTH)
    if not text:
        raise InvalidValue("the conference room name is empty")
    return text


def resolve_url(raw: str, base: str) -> str:
    """Resolve ``raw`` against the document URL ``base`` as Twilio does.

    ``urljoin`` gives the browser's answer, so ``www.example.com`` (no scheme)
    becomes a path next to the document, exactly like Twilio treats it.
    """
    text = check_length(check_text(raw.strip()), MAX_URL_LENGTH)
    if not text:
        raise InvalidValue("the URL is empty")
    try:
        resolved = urljoin(base, text)
        parts = urlsplit(resolved)
        host = parts.hostname
    except ValueError as exc:  # e.g. an invalid IPv6 literal in the host
        raise InvalidValue(f"{text[:80]!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidValue(f"{resolved[:80]!r} is not an http(s) URL")
    return check_length(quote(resolved, safe=_URL_SAFE), MAX_URL_LENGTH)


def url_parser(base: str) -> Callable[[str], str]:
    """A URL parser bound to one document's URL."""

    def parse(raw: str) -> str:
        return resolve_url(raw, base)

    return parse


def wait_url_parser(base: str) -> Callable[[str], str]:
    """Like :func:`url_parser`, but ``''`` stays ``''`` (it means silence)."""

    def parse(raw: str) -> str:
        if not raw.strip():
            return ""
        return resolve_url(raw, base)

    return parse


def pattern_parser(pattern: str, description: str) -> Callable[[str], str]:
    """A parser for a short token that must match ``pattern`` entirely."""
    compiled = re.compile(pattern)

    def parse(raw: str) -> str:
        text = raw.strip()
        if not compiled.fullmatch(text):
            raise InvalidValue(f"{raw[:40]!r} is not {description}")
        return text

    return parse


def parse_free_text(raw: str) -> str:
    """An attribute Twilio leaves free (callerId, passports…): checked, kept."""
    return check_text(raw.strip())
