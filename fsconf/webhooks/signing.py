"""Twilio's request signature and the exact bytes of a callback request.

Theory of operation (pure: no I/O, no clock, no logging)
--------------------------------------------------------
``X-Twilio-Signature`` is ``base64(HMAC-SHA1(auth_token, data))`` where ``data``
is the full URL the application receives, followed, for a form POST, by every
parameter as ``name + value``, sorted by name (then by value for a repeated
name).  For GET the parameters are already in the URL's query string, so
nothing is appended.  This is what ``twilio.request_validator.RequestValidator``
checks, so an application's validation middleware accepts our callbacks.

:func:`build_request` fixes the URL, headers and body *once*, and signs exactly
those, so what is signed is what goes on the wire.  The auth token is used as a
key and never returned, formatted or logged.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final
from urllib.parse import quote_plus, urlsplit, urlunsplit

__all__ = [
    "FORM_CONTENT_TYPE",
    "SIGNATURE_HEADER",
    "USER_AGENT",
    "Params",
    "PreparedRequest",
    "build_request",
    "compute_signature",
    "signature_payload",
]

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
USER_AGENT: Final = "TwilioProxy/1.1"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=utf-8"

#: Callback parameters: an ordered sequence of (name, value) pairs, or a mapping.
Params = Sequence[tuple[str, str]] | Mapping[str, str]

#: ``(url, headers, body)``; ``body`` is None for GET.
PreparedRequest = tuple[str, dict[str, str], bytes | None]

# Text that quote_plus() returns unchanged (its always-safe set; '/' is quoted).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
# text -> quote_plus(text); bounded (emptied when full), pure memoisation.
_QUOTED: dict[str, str] = {}
_QUOTED_LIMIT: Final = 16384


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    items: Iterable[tuple[str, str]] = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str pair, got {value!r}")
        pairs.append((name, value))
    return pairs


def _payload(url: str, pairs: list[tuple[str, str]]) -> str:
    return url + "".join([name + value for name, value in sorted(set(pairs))])


def _sign(auth_token: str, payload: str) -> str:
    digest = hmac.digest(auth_token.encode("utf-8"), payload.encode("utf-8"), "sha1")
    return base64.b64encode(digest).decode("ascii")


def _quote(text: str) -> str:
    """``quote_plus(text)``, remembered: names and most values repeat (SIDs, flags)."""
    quoted = _QUOTED.get(text)
    if quoted is None:
        quoted = text if _UNRESERVED(text) else quote_plus(text)
        if len(_QUOTED) >= _QUOTED_LIMIT:
            _QUOTED.clear()
        _QUOTED[text] = quoted
    return quoted


def _form(pairs: list[tuple[str, str]]) -> str:
    """``urlencode(pairs)``, byte for byte, quoting each distinct text once."""
    return "&".join([_quote(name) + "=" + _quote(value) for name, value in pairs])


def signature_payload(url: str, params: Params | None = None) -> str:
    """The string that is signed: ``url`` + sorted ``name + value`` (POST params).

    Pairs are sorted by name, then value; an exact duplicate pair counts once,
    as in Twilio's ``RequestValidator``.
    """
    return _payload(url, _pairs(params))


def compute_signature(auth_token: str, url: str, params: Params | None = None) -> str:
    """``X-Twilio-Signature`` for a request to ``url`` with form ``params`` (None for GET)."""
    return _sign(auth_token, _payload(url, _pairs(params)))


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"callback URL must be absolute http(s): {url!r}")
    if any(character in url for character in "\r\n\t "):
        raise ValueError(f"callback URL contains whitespace: {url!r}")


def build_request(url: str, method: str, params: Params | None, auth_token: str) -> PreparedRequest:
    """The signed request Twilio would send: ``(final_url, headers, body)``.

    * POST: ``params`` form-encoded (UTF-8) in the body, signed with the URL.
    * GET: ``params`` appended to the URL's existing query string; the
      signature covers that final URL only.

    A fragment is dropped (it never reaches the server, so it cannot be signed).
    """
    _check_url(url)
    verb = method.upper()
    pairs = _pairs(params)
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
    }
    if verb == "POST":
        body = _form(pairs).encode("ascii")
        headers["Content-Type"] = FORM_CONTENT_TYPE
        headers[SIGNATURE_HEADER] = _sign(auth_token, _payload(base, pairs))
        return base, headers, body
    if verb == "GET":
        extra = _form(pairs)
        query = "&".join(part for part in (parts.query, extra) if part)
        final = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        headers[SIGNATURE_HEADER] = _sign(auth_token, final)
        return final, headers, None
    raise ValueError(f"callback method must be GET or POST, got {method!r}")
