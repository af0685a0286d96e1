"""The CLI's actions, sent to the running ``fsconf serve`` over its REST API.

Theory of operation
-------------------
The conference engine lives in ``fsconf serve`` (one serial queue per
conference, the inbound ESL connections).  A second process that sent
FreeSWITCH commands itself would race it, so every action of the CLI
(end a conference; mute, unmute, hold, unhold, kick, announce a participant)
is the Twilio REST request any API client would send, authenticated as the
conference's own account (the credentials come from the database, which the
CLI shares with the server).  The server applies it through the same service
layer and answers once FreeSWITCH has confirmed it.

Failures are :class:`~fsconf.errors.FsconfError` subclasses with the text the
operator needs: :class:`ServerUnreachable` ("fsconf serve is not running at
http://...: ...") and :class:`ApiRequestError` (Twilio's ``message`` and
``code`` from the error body).  The auth token never appears in either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

import requests

from fsconf.errors import FsconfError

__all__ = [
    "ApiClient",
    "ApiRequestError",
    "ServerUnreachable",
    "server_url",
]

API_VERSION: Final = "2010-04-01"
DEFAULT_TIMEOUT: Final = (3.05, 60.0)
"""Connect, read: the server answers after FreeSWITCH confirmed, which can take a while."""


class ServerUnreachable(FsconfError):
    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"fsconf serve is not running at {base_url}: {reason}")
        self.base_url = base_url
        self.reason = reason


class ApiRequestError(FsconfError):
    """The server refused the action (HTTP 4xx/5xx), with Twilio's error body."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        where = f" (code {code})" if code is not None else ""
        super().__init__(f"{message}{where} [HTTP {status}]")
        self.status = status
        self.code = code
        self.message = message


def server_url(host: str, port: int) -> str:
    """The URL to reach ``FSCONF_HTTP_LISTEN``: a wildcard bind is reached on loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass
class ApiClient:
    """Twilio REST requests as one account; ``http`` is injectable for tests."""

    base_url: str
    account_sid: str
    auth_token: str = field(repr=False)
    http: requests.Session = field(default_factory=requests.Session, repr=False)
    timeout: tuple[float, float] = DEFAULT_TIMEOUT

    def _url(self, *parts: str) -> str:
        path = "/".join(quote(part, safe="") for part in parts)
        return f"{self.base_url}/{API_VERSION}/Accounts/{quote(self.account_sid, safe='')}/{path}"

    def _send(self, method: str, url: str, data: Mapping[str, str] | None = None) -> None:
        try:
            response = self.http.request(
                method,
                url,
                data=dict(data) if data is not None else None,
                auth=(self.account_sid, self.auth_token),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.ConnectionError as error:
            raise ServerUnreachable(self.base_url, _reason(error)) from None
        except requests.Timeout:
            raise ServerUnreachable(
                self.base_url, f"no answer within {self.timeout[1]:g}s"
            ) from None
        except requests.RequestException as error:
            raise ServerUnreachable(self.base_url, type(error).__name__) from None
        if response.status_code >= 400:
            raise _api_error(response)

    def end_conference(self, conference_sid: str) -> None:
        self._send(
            "POST", self._url("Conferences", f"{conference_sid}.json"), {"Status": "completed"}
        )

    def update_participant(
        self, conference_sid: str, call_sid: str, params: Mapping[str, str]
    ) -> None:
        url = self._url("Conferences", conference_sid, "Participants", f"{call_sid}.json")
        self._send("POST", url, params)

    def kick_participant(self, conference_sid: str, call_sid: str) -> None:
        url = self._url("Conferences", conference_sid, "Participants", f"{call_sid}.json")
        self._send("DELETE", url)


def _reason(error: requests.ConnectionError) -> str:
    """The innermost cause ("Connection refused"), without the URL or the pool's noise."""
    cause: BaseException | None = error
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
        cause = (
            cause.__cause__
            or cause.__context__
            or (cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None)
        )
    return type(error).__name__


def _api_error(response: requests.Response) -> ApiRequestError:
    code: int | None = None
    message = f"HTTP {response.status_code} {response.reason or ''}".strip()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str) and body["message"]:
            message = body["message"]
        if isinstance(body.get("code"), int):
            code = body["code"]
    return ApiRequestError(response.status_code, code, message)
