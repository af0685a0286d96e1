"""The TwiML fetcher: one signed HTTP request, classified the Twilio way.

Theory of operation
-------------------
:meth:`Fetcher.fetch` turns ``(url, method, params, auth_token)`` into a
:class:`~fsconf.twiml.Response` or :class:`~fsconf.twiml.Audio`, or raises
:class:`~fsconf.errors.TwimlError` with Twilio's code. It is the only place in
``fsconf.calls`` that does HTTP, on one injected keep-alive
``requests.Session`` (DESIGN: "one TwiML fetch on a keep-alive HTTP session").

* The request is built and signed once by
  :func:`fsconf.webhooks.signing.build_request` (``X-Twilio-Signature`` with
  the account's auth token), so what is signed is what is sent.
* Time is bounded three ways, like Twilio (error 11205's page: "Twilio will
  try for 10 seconds to establish a TCP connection ... will wait for a total of
  15 seconds to receive an HTTP response"): a connect timeout, a read timeout
  per socket read, and a total deadline for the whole exchange.
* The body is streamed and read only up to the cap + 1 byte, so a 10 MB answer
  costs 64 kB of memory before it is refused (11750); an audio answer's body
  is not read at all (FreeSWITCH fetches it again through its HTTP cache).

Error codes: DNS failure 11210 (HTTP bad host name); connection refused or
reset, connect/read/total timeout 11205 (HTTP connection failure: Twilio's
page covers its timers); too many HTTP 3xx 11215; non-2xx status 11200;
an unusable URL 11100; content type, size and document errors as
:func:`fsconf.twiml.classify_response` raises them (12300, 11750, 12100,
12200). The auth token is never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import gevent
import requests

from fsconf.calls.params import Pairs
from fsconf.errors import TwimlError
from fsconf.redact import log_url
from fsconf.twiml import Audio, Response, classify_response
from fsconf.twiml.errors import HTTP_RETRIEVAL_FAILURE, RESPONSE_TOO_LARGE
from fsconf.twiml.parser import AUDIO_MEDIA_TYPES, DEFAULT_MAX_BYTES
from fsconf.webhooks.signing import build_request

logger = logging.getLogger(__name__)

INVALID_URL: Final = 11100
CONNECTION_FAILURE: Final = 11205
BAD_HOST_NAME: Final = 11210
TOO_MANY_REDIRECTS: Final = 11215

_CHUNK: Final = 16 * 1024
_DNS_MARKERS: Final = (
    "NameResolutionError",
    "Name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "Temporary failure in name resolution",
    "No address associated",
)


@dataclass(frozen=True, slots=True)
class FetchTimeouts:
    """Seconds; Twilio's defaults: 10 s to connect (two 5 s tries), 15 s in all."""

    connect: float = 10.0
    read: float = 15.0
    total: float = 15.0


class _Deadline(Exception):
    """The total deadline passed (raised by gevent.Timeout inside fetch)."""


#: Keep-alive connections kept per origin. Calls arrive in bursts (a call center's
#: morning, a dial-out wave) and each fetches its TwiML at once: requests' default of 10
#: made urllib3 discard and re-open connections ("Connection pool is full").
POOL_MAXSIZE = 64


def _pooled_session() -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_MAXSIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Fetcher:
    """Fetch TwiML documents on one keep-alive ``requests.Session``."""

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        timeouts: FetchTimeouts | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = 10,
    ) -> None:
        self.session = session or _pooled_session()
        self.session.max_redirects = max_redirects
        self.timeouts = timeouts or FetchTimeouts()
        self.max_bytes = max_bytes

    def fetch(
        self,
        url: str,
        method: str,
        params: Pairs,
        auth_token: str,
        *,
        restricted: bool = False,
        log_name: str = "",
    ) -> Response | Audio:
        """GET/POST ``url`` signed with ``auth_token``; the classified answer."""
        try:
            final_url, headers, body = build_request(url, method, params, auth_token)
        except ValueError as error:
            raise TwimlError(INVALID_URL, f"invalid URL: {error}", url=url) from None
        logger.debug("%s: %s %s", log_name, method.upper(), log_url(final_url))
        try:
            with gevent.Timeout(self.timeouts.total, _Deadline):
                return self._exchange(method.upper(), final_url, headers, body, restricted, url)
        except _Deadline:
            reason = f"no complete answer within {self.timeouts.total:g}s"
            raise TwimlError(CONNECTION_FAILURE, reason, url=url) from None
        except requests.RequestException as error:
            raise _transport_error(error, url) from None

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        restricted: bool,
        original_url: str,
    ) -> Response | Audio:
        timeout = (self.timeouts.connect, self.timeouts.read)
        with self.session.request(
            method, url, headers=headers, data=body, timeout=timeout, stream=True
        ) as answer:
            content_type = answer.headers.get("Content-Type")
            if not 200 <= answer.status_code <= 299 or _is_audio(content_type):
                data = b""
            else:
                data = self._read_capped(answer, url)
            result = classify_response(
                answer.status_code,
                content_type,
                data,
                answer.url,
                restricted=restricted,
                max_bytes=self.max_bytes,
            )
        if isinstance(result, Audio) and not answer.history:
            # FreeSWITCH fetches the audio again: give it the application's URL,
            # not ours with the call's parameters appended to a GET.
            return Audio(url=original_url, media_type=result.media_type)
        return result

    def _read_capped(self, answer: requests.Response, url: str) -> bytes:
        length = answer.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise _too_large(int(length), self.max_bytes, url)
        data = bytearray()
        for chunk in answer.iter_content(_CHUNK):
            data += chunk
            if len(data) > self.max_bytes:
                raise _too_large(len(data), self.max_bytes, url)
        return bytes(data)


def _is_audio(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in AUDIO_MEDIA_TYPES


def _too_large(size: int, cap: int, url: str) -> TwimlError:
    return TwimlError(
        RESPONSE_TOO_LARGE, f"response body too large ({size} > {cap} bytes)", url=url
    )


def _transport_error(error: requests.RequestException, url: str) -> TwimlError:
    text = f"{type(error).__name__}: {error}"[:300]
    if isinstance(error, requests.TooManyRedirects):
        return TwimlError(TOO_MANY_REDIRECTS, text, url=url)
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return TwimlError(INVALID_URL, text, url=url)
    if isinstance(error, requests.ConnectionError) and any(m in text for m in _DNS_MARKERS):
        return TwimlError(BAD_HOST_NAME, text, url=url)
    if isinstance(error, requests.Timeout | requests.ConnectionError):
        return TwimlError(CONNECTION_FAILURE, text, url=url)
    return TwimlError(HTTP_RETRIEVAL_FAILURE, text, url=url)
