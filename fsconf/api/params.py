"""Parsing and validating request parameters, the Twilio way.

Theory of operation
-------------------
Every parameter the API understands is read through one of the functions
below, *before* anything is sent to the :class:`ConferenceControl`: a request
with one bad value is refused as a whole with 400 and Twilio's error body, and
no half of it reaches FreeSWITCH.  Parameters the API does not know are
ignored, as Twilio ignores them.

Each function takes the request's ``MultiDict`` and the parameter's name, and
returns ``None`` (or the default) when the parameter is absent.

Choices written down here (where Twilio is lenient or silent):

* Booleans must be ``true`` or ``false`` (case-insensitive, which is what
  every Twilio helper library sends).  Twilio's docs say other values mean
  ``false``; fsconf refuses them so a typo never unmutes anybody.
* URLs must be absolute ``http``/``https`` URLs without whitespace or control
  characters.  ``WaitUrl=""`` is allowed and means silence (DESIGN.md).
* Error codes: 21205 invalid URL, 21209 invalid method, 21208 invalid
  timeout, 21201/21211 missing/invalid ``To``, 21213/21212 missing/invalid
  ``From``; every other invalid value (booleans, enumerations, numbers out of
  range, dates, paging) gets :data:`INVALID_PARAMETER`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict

from fsconf.api.errors import ParameterError

INVALID_PARAMETER = 20001
INVALID_URL = 21205
INVALID_METHOD = 21209
INVALID_TIMEOUT = 21208
TO_MISSING = 21201
TO_INVALID = 21211
FROM_MISSING = 21213
FROM_INVALID = 21212

HTTP_METHODS = ("GET", "POST")
MAX_URL_LENGTH = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SID_PATTERN = r"{prefix}[0-9a-f]{{32}}"

Form = MultiDict[str, str]


def _value(form: Form, name: str) -> str | None:
    return form.get(name)


def invalid(name: str, value: str, expected: str, code: int = INVALID_PARAMETER) -> ParameterError:
    return ParameterError(code, name, f"Invalid {name}: {value!r} ({expected})")


def boolean(form: Form, name: str) -> bool | None:
    value = _value(form, name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise invalid(name, value, "expected true or false")
    return lowered == "true"


def choice(form: Form, name: str, allowed: Iterable[str]) -> str | None:
    value = _value(form, name)
    options = tuple(allowed)
    if value is not None and value not in options:
        raise invalid(name, value, "expected one of " + ", ".join(options))
    return value


def method(form: Form, name: str) -> str | None:
    """GET or POST (any case, as Twilio accepts it), returned upper-case."""
    value = _value(form, name)
    if value is None:
        return None
    if value.upper() not in HTTP_METHODS:
        raise invalid(name, value, "expected GET or POST", INVALID_METHOD)
    return value.upper()


def url(form: Form, name: str, *, allow_empty: bool = False) -> str | None:
    value = _value(form, name)
    if value is None:
        return None
    if value == "" and allow_empty:
        return value
    if not is_http_url(value):
        raise invalid(name, value, "expected an absolute http(s) URL", INVALID_URL)
    return value


def is_http_url(value: str) -> bool:
    if not value or len(value) > MAX_URL_LENGTH or _WHITESPACE_OR_CONTROL.search(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def integer(
    form: Form, name: str, *, low: int, high: int, code: int = INVALID_PARAMETER
) -> int | None:
    value = _value(form, name)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise invalid(name, value, f"expected an integer from {low} to {high}", code)
    number = int(value)
    if not low <= number <= high:
        raise invalid(name, value, f"expected an integer from {low} to {high}", code)
    return number


def events(form: Form, name: str, allowed: Iterable[str]) -> tuple[str, ...] | None:
    """A list parameter: repeated keys (what the helper libraries send) or
    space-separated words (what TwiML attributes look like); order kept,
    duplicates dropped."""
    values = form.getlist(name)
    if not values:
        return None
    options = tuple(allowed)
    words: list[str] = []
    for value in values:
        for word in value.split():
            if word not in options:
                raise invalid(name, value, "expected words from " + ", ".join(options))
            if word not in words:
                words.append(word)
    return tuple(words)


def text(form: Form, name: str, *, max_length: int) -> str | None:
    """Free text: 1..max_length characters, no control characters."""
    value = _value(form, name)
    if value is None:
        return None
    check_text(name, value, max_length=max_length)
    return value


def check_text(name: str, value: str, *, max_length: int, code: int = INVALID_PARAMETER) -> str:
    if not 1 <= len(value) <= max_length or _CONTROL.search(value):
        raise invalid(
            name, value, f"expected 1 to {max_length} characters, no control characters", code
        )
    return value


def address(form: Form, name: str, *, missing: int, bad: int) -> str:
    """``From`` / ``To``: required, non-empty, no control characters (and no
    surrounding whitespace, which no dial string wants)."""
    value = _value(form, name)
    if value is None or value == "":
        raise ParameterError(missing, name, f"A '{name}' is required")
    if value != value.strip():
        raise invalid(name, value, "no leading or trailing whitespace", bad)
    return check_text(name, value, max_length=255, code=bad)


def sid(form: Form, name: str, prefix: str) -> str | None:
    value = _value(form, name)
    if value is None:
        return None
    if not re.fullmatch(_SID_PATTERN.format(prefix=prefix), value):
        raise invalid(name, value, f"expected {prefix} followed by 32 hex digits")
    return value


def day(name: str, value: str) -> date:
    """``YYYY-MM-DD`` exactly (Twilio refuses ISO 8601 date-times with 400)."""
    if not _DATE.fullmatch(value):
        raise invalid(name, value, "expected YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(name, value, "expected YYYY-MM-DD") from None
