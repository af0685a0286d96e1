"""How a signed callback request goes on the wire: urllib3 first, requests when needed.

Theory of operation
-------------------
* The delivery worker is given a :class:`requests.Session` (injected, so tests
  and operators decide proxies, CA bundles, adapters).  ``Session.request``
  costs about 0.7 ms of CPU per POST on loopback (preparing, merging
  environment settings, cookies, hooks) against 0.3 ms for urllib3 alone, and
  at thousands of callbacks a second that difference is the CPU budget of the
  whole process.  So :class:`Transport` sends through a
  :class:`urllib3.PoolManager` (keep-alive, ``maxsize`` connections per host)
  whenever that is *exactly* what requests would have done, and through the
  session otherwise.
* **The fast path is only taken when it cannot change behaviour**: a plain
  ``requests.Session`` with requests' own adapters, no auth, no hooks, no
  cookies, no client certificate, and, for the URL's origin, no proxy and a
  verified TLS configuration (the environment is read once per origin through
  ``Session.merge_environment_settings``, as requests does per request, so
  ``HTTPS_PROXY``/``NO_PROXY`` and ``REQUESTS_CA_BUNDLE`` keep working).  TLS is
  verified against the same CA bundle requests would use, with hostname
  checking.  The session's default headers go out under ours, as requests
  merges them.
* **Redirects keep requests' policy.**  The fast path never follows one: a
  3xx with a ``Location`` marks the origin as "through requests" and the
  request is sent again with ``Session.request(allow_redirects=True)``.  The
  redirecting endpoint sees that first request twice; callbacks are
  at-least-once anyway.
* **Bounded everything.**  Connect and read timeouts on every request (the
  caller adds an overall deadline), no retries inside the transport (the
  outbox retries), and at most ``max_body`` bytes of a response are read:
  beyond that the connection is closed rather than drained.  Only a fully read
  response returns its connection to the pool.
* Errors come back as text in requests' vocabulary (``ConnectionError: ...``,
  ``ReadTimeout: ...``), never with the URL's query string.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

__all__ = ["Reply", "Transport"]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_ORIGIN_CACHE_LIMIT: Final = 4096
_CHUNK: Final = 8192


@dataclass(frozen=True)
class Reply:
    """What came back: a status code, or an error text (never both)."""

    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Route:
    """How to reach one origin: its urllib3 connection pool, or None for requests."""

    pool: urllib3.HTTPConnectionPool | None


def _plain_session(session: requests.Session) -> bool:
    """True when requests would add nothing to a request that urllib3 does not."""
    if type(session) is not requests.Session:
        return False
    for prefix in ("http://", "https://"):
        if type(session.adapters.get(prefix)) is not HTTPAdapter:
            return False
    if len(session.adapters) != 2:
        return False
    hooks = session.hooks or {}
    return (
        session.auth is None
        and not session.cert
        and not session.proxies
        and not any(hooks.values())
        and not session.cookies
    )


class Transport:
    """Sends one request; see the module docstring."""

    def __init__(self, session: requests.Session, *, maxsize: int, max_body: int) -> None:
        self.session = session
        self.maxsize = maxsize
        self.max_body = max_body
        self._fast = _plain_session(session)
        self._routes: dict[tuple[str, str], _Route] = {}
        self._managers: dict[tuple[str, str], urllib3.PoolManager] = {}

    def close(self) -> None:
        for manager in self._managers.values():
            manager.clear()

    def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Reply:
        route = self._route(url)
        if route.pool is not None:
            reply = self._send_fast(route.pool, method, url, headers, body, timeout)
            if reply is not None:
                return reply
            # A redirect: from now on this origin goes through requests.
            self._routes[_origin(url)] = _Route(None)
        return self._send_requests(method, url, headers, body, timeout)

    # --- routes ------------------------------------------------------------------

    def _route(self, url: str) -> _Route:
        origin = _origin(url)
        route = self._routes.get(origin)
        # A pool the manager has evicted (least recently used) is closed: look again.
        if route is None or (route.pool is not None and route.pool.pool is None):
            manager = self._manager_for(url) if self._fast else None
            # The origin's pool, looked up once (PoolManager.urlopen would per request).
            route = _Route(manager.connection_from_url(url) if manager is not None else None)
            if len(self._routes) >= _ORIGIN_CACHE_LIMIT:
                self._routes.clear()
            self._routes[origin] = route
        return route

    def _manager_for(self, url: str) -> urllib3.PoolManager | None:
        if urlsplit(url).username is not None:
            # https://user:pass@host/... (Twilio supports it): requests turns the
            # userinfo into Basic auth; the fast path would send it nowhere.
            return None
        settings = self.session.merge_environment_settings(url, {}, None, self.session.verify, None)
        proxies = {key: value for key, value in (settings.get("proxies") or {}).items() if value}
        if proxies or settings.get("cert"):
            return None
        verify = settings.get("verify", True)
        if verify is False:
            return None  # requests' unverified mode (with its warnings) stays requests'
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
        kind = "dir" if os.path.isdir(bundle) else "file"
        manager = self._managers.get((kind, bundle))
        if manager is None:
            # The same settings as requests' HTTPAdapter.cert_verify for verify=True/path.
            manager = urllib3.PoolManager(
                num_pools=256,
                maxsize=self.maxsize,
                block=False,
                cert_reqs="CERT_REQUIRED",
                ca_certs=bundle if kind == "file" else None,
                ca_cert_dir=bundle if kind == "dir" else None,
            )
            self._managers[(kind, bundle)] = manager
        return manager

    # --- the two paths -------------------------------------------------------------

    def _send_fast(
        self,
        pool: urllib3.HTTPConnectionPool,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Reply | None:
        # requests allows bytes header values; urllib3's pool wants text.
        merged = {
            name: value.decode("latin-1") if isinstance(value, bytes) else value
            for name, value in {**self.session.headers, **headers}.items()
        }
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            response = pool.urlopen(
                method,
                target,
                body=body,
                headers=merged,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                retries=False,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
        except Urllib3Error as error:
            return Reply(error=_describe(error))
        try:
            complete = self._read_capped(response)
        except Urllib3Error as error:
            response.close()
            response.release_conn()
            return Reply(error=_describe(error))
        if complete:
            response.release_conn()
        else:
            response.close()  # too large: drop the connection rather than drain it
            response.release_conn()
        if response.status in _REDIRECTS and response.headers.get("Location"):
            return None
        return Reply(status_code=response.status)

    def _read_capped(self, response: urllib3.BaseHTTPResponse) -> bool:
        received = 0
        while True:
            chunk = response.read(_CHUNK, decode_content=False)
            if not chunk:
                return True
            received += len(chunk)
            if received > self.max_body:
                return False

    def _send_requests(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Reply:
        try:
            response = self.session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                stream=True,
                allow_redirects=True,
            )
            try:
                received = 0
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > self.max_body:
                        break
            finally:
                response.close()
        except requests.RequestException as error:
            # The message quotes the URL (query tokens included): keep the
            # class and the root cause's class only; last_error is shown by the CLI.
            cause = error.__context__ or error.__cause__
            reason = f" ({type(cause).__name__})" if cause is not None else ""
            return Reply(error=f"{type(error).__name__}{reason}")
        return Reply(status_code=response.status_code)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _describe(error: Urllib3Error) -> str:
    """urllib3's error in requests' words (the outbox's last_error vocabulary)."""
    # NewConnectionError derives from ConnectTimeoutError: test it first.
    if isinstance(error, NewConnectionError):
        name = "ConnectionError"
    elif isinstance(error, ConnectTimeoutError):
        name = "ConnectTimeout"
    elif isinstance(error, ReadTimeoutError):
        name = "ReadTimeout"
    elif isinstance(error, SSLError):
        name = "SSLError"
    else:
        name = "ConnectionError"
    return f"{name}: {error}"
