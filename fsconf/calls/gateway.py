"""The seam between a call and the conference engine.

Theory of operation
-------------------
When a call's TwiML reaches ``<Dial><Conference>``, the runner calls
``gateway.join(call, dial, conference)`` and blocks until the participant has
left the conference (kicked, conference ended, ``*``, timeLimit, or the
caller hung up). The gateway drives the channel only through the
:class:`CallHandle` it is given, and answers with a
:class:`~fsconf.calls.program.DialOutcome`, which the program turns into the
Dial action request (or the next verb).

:class:`CallHandle` is deliberately small: identity, ``execute`` and
``execute_async`` on the call's own outbound socket (so every app is
event-locked and correlated by Event-UUID), ``api`` on that socket, the
wait/hold audio (:meth:`CallHandle.start_audio`), and the hangup state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import gevent.event

from fsconf.calls.audio import AudioConfig, AudioLoop
from fsconf.calls.fetch import Fetcher
from fsconf.calls.params import CallParams, Pairs, with_extra
from fsconf.calls.program import DialOutcome
from fsconf.errors import TwimlError
from fsconf.esl.frames import ApiResponse, Event
from fsconf.esl.outbound import OutboundSession
from fsconf.twiml import Audio, Conference, Dial, Response

logger = logging.getLogger(__name__)


class CallHandle:
    """What the conference layer may do with one call."""

    def __init__(
        self,
        session: OutboundSession,
        call: CallParams,
        *,
        auth_token: str,
        fetcher: Fetcher,
        audio_config: AudioConfig,
        on_alert: Callable[[TwimlError], None],
    ) -> None:
        self.session = session
        self.call = call
        self._auth_token = auth_token
        self._fetcher = fetcher
        self._audio_config = audio_config
        self._on_alert = on_alert

    def __repr__(self) -> str:  # never shows the auth token
        return f"CallHandle({self.call_sid})"

    @property
    def call_sid(self) -> str:
        return self.call.call_sid

    @property
    def account_sid(self) -> str:
        return self.call.account_sid

    @property
    def uuid(self) -> str:
        uuid = self.session.uuid
        assert uuid is not None, "the session is connected before a handle exists"
        return uuid

    @property
    def hungup(self) -> bool:
        return self.session.hungup

    def wait_hangup(self, timeout: float | None = None) -> bool:
        return self.session.wait_hangup(timeout)

    @property
    def hangup_event(self) -> gevent.event.Event:
        """Set once the call hung up: wait on it with ``gevent.wait``, no greenlet."""
        return self.session.hangup_event

    def execute(self, app: str, arg: str | None = None, *, timeout: float | None = None) -> Event:
        return self.session.execute(app, arg, timeout=timeout)

    def execute_async(
        self, app: str, arg: str | None = None, *, timeout: float | None = None
    ) -> gevent.event.AsyncResult:
        return self.session.execute_async(app, arg, timeout=timeout)

    def api(self, text: str, *, check: bool = True) -> ApiResponse:
        return self.session.api(text, check=check)

    def fetch(
        self, url: str, method: str, extra: Pairs = (), *, restricted: bool = True
    ) -> Response | Audio:
        """A signed request with this call's parameters (CallStatus in-progress)."""
        params = with_extra(self.call.standard("in-progress"), extra)
        return self._fetcher.fetch(
            url, method, params, self._auth_token, restricted=restricted, log_name=self.call_sid
        )

    def start_audio(
        self, url: str | None, method: str = "POST", *, params: Pairs = ()
    ) -> AudioLoop:
        """Start wait/hold/announce audio; see :mod:`fsconf.calls.audio`.

        ``loop.wait_ready()`` returns the error of the first fetch (already
        stored as an alert), or None once audio runs.
        """
        loop = AudioLoop(
            self.session,
            url,
            method,
            fetch=lambda target, verb: self.fetch(target, verb, params),
            config=self._audio_config,
            on_error=self._on_alert,
            log_name=self.call_sid,
        )
        return loop.start()


class ConferenceGateway(Protocol):
    """The conference engine, as a call sees it."""

    def join(self, call: CallHandle, dial: Dial, conference: Conference) -> DialOutcome:
        """Block until the participant leaves the conference; how it left."""
        ...


class NoConferenceGateway:
    """Until the conference engine is wired: every Dial fails (DialCallStatus=failed)."""

    def join(self, call: CallHandle, dial: Dial, conference: Conference) -> DialOutcome:
        logger.error("%s: no conference gateway configured", call.call_sid)
        return DialOutcome(status="failed")
