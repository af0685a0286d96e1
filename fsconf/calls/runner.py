"""Run one call's TwiML program on its outbound socket (the gevent shell).

Theory of operation
-------------------
:class:`CallRunner` is a loop around the pure :mod:`fsconf.calls.program`:
it performs each step and feeds the result back, until ``Finished``. Nothing
here decides what the call does next; it only moves data between the program
and the world (HTTP through the :class:`~fsconf.calls.fetch.Fetcher`, the
channel through the :class:`~fsconf.esl.outbound.OutboundSession`, the
conference through the :class:`~fsconf.calls.gateway.ConferenceGateway`).

Hangup: once the channel is gone, every step that needs it is answered with
``CallerHungUp`` instead of being performed (the program then finishes, or
requests a Dial action whose answer it ignores). An ``EslDisconnected``
while a step runs means the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fsconf.calls.audio import AudioConfig, run_execute
from fsconf.calls.fetch import Fetcher
from fsconf.calls.gateway import CallHandle, ConferenceGateway
from fsconf.calls.params import CallParams
from fsconf.calls.program import (
    Answer,
    CallerHungUp,
    Completed,
    Dialed,
    DialOutcome,
    Execute,
    Fetch,
    Fetched,
    FetchFailed,
    Finished,
    HangupCall,
    JoinConference,
    ProgramConfig,
    Purpose,
    RecordAlert,
    RejectCall,
    Result,
    Step,
    advance,
    start,
)
from fsconf.errors import EslDisconnected, TwimlError
from fsconf.esl.outbound import OutboundSession
from fsconf.redact import log_url

logger = logging.getLogger(__name__)


class CallRunner:
    """Perform a program's steps for one call."""

    def __init__(
        self,
        session: OutboundSession,
        call: CallParams,
        *,
        auth_token: str,
        fetcher: Fetcher,
        gateway: ConferenceGateway,
        config: ProgramConfig | None = None,
        audio_config: AudioConfig | None = None,
        on_alert: Callable[[RecordAlert], None] = lambda alert: None,
        on_answer: Callable[[], None] = lambda: None,
    ) -> None:
        self.session = session
        self.call = call
        self.config = config or ProgramConfig()
        self._auth_token = auth_token
        self._fetcher = fetcher
        self._gateway = gateway
        self._on_alert = on_alert
        self._on_answer = on_answer
        #: True once the program hung the channel up (no second hangup needed).
        self.hung_up = False
        self.handle = CallHandle(
            session,
            call,
            auth_token=auth_token,
            fetcher=fetcher,
            audio_config=audio_config or AudioConfig(tts=self.config.tts),
            on_alert=self._alert_from_error,
        )

    def run(self, voice_url: str, voice_method: str) -> Finished:
        program, step = start(self.call, voice_url, voice_method, self.config)
        while not isinstance(step, Finished):
            program, step = advance(program, self._perform(step))
        logger.info("%s: TwiML finished, CallStatus %s", self.call.call_sid, step.status)
        return step

    def _perform(self, step: Step) -> Result:
        if self.session.hungup and _needs_channel(step):
            return CallerHungUp()
        try:
            return self._dispatch(step)
        except EslDisconnected as error:
            logger.info("%s: call went away during %s: %s", self.call.call_sid, step, error)
            if isinstance(step, JoinConference):
                return Dialed(DialOutcome(hung_up=True))
            return CallerHungUp()

    def _dispatch(self, step: Step) -> Result:
        if isinstance(step, Fetch):
            return self._fetch(step)
        if isinstance(step, Answer):
            self.session.execute("answer")
            self._on_answer()
            return Completed()
        if isinstance(step, Execute):
            return Completed(run_execute(self.session, step, lambda: False))
        if isinstance(step, RecordAlert):
            self._on_alert(step)
            return Completed()
        if isinstance(step, HangupCall | RejectCall):
            self.session.hangup(step.cause)
            self.hung_up = True
            return Completed()
        if isinstance(step, JoinConference):
            dial = step.dial
            return Dialed(self._gateway.join(self.handle, dial, dial.conference))
        raise AssertionError(f"unexpected step {step!r}")

    def _fetch(self, step: Fetch) -> Result:
        logger.info(
            "%s: fetching %s (%s)", self.call.call_sid, log_url(step.url), step.purpose.value
        )
        try:
            document = self._fetcher.fetch(
                step.url, step.method, step.params, self._auth_token, log_name=self.call.call_sid
            )
        except TwimlError as error:
            logger.warning("%s: %s", self.call.call_sid, error)
            return FetchFailed(error)
        return Fetched(document)

    def _alert_from_error(self, error: TwimlError) -> None:
        self._on_alert(RecordAlert(error.code, str(error), error.url))


def _needs_channel(step: Step) -> bool:
    if isinstance(step, RecordAlert):
        return False
    if isinstance(step, Fetch):
        return step.purpose is not Purpose.ACTION_AFTER_HANGUP
    return True
