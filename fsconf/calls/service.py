"""CallService: the outbound-server handler that runs one call end to end.

Theory of operation
-------------------
For each connection FreeSWITCH opens (``socket <fsconf> async full``),
:meth:`CallService.handle`:

1. sets the session up (connect, then myevents + linger, pipelined: one
   round trip; conference events are followed on the inbound connection);
2. finds the application (DESIGN, "Operator interface"): the channel variables
   ``fsconf_voice_url`` / ``fsconf_account_sid`` if the dialplan set them,
   else the account's ``voice_url``, else ``FSCONF_VOICE_URL``; the account is
   ``FSCONF_ACCOUNT_SID`` unless the channel names one;
3. in one transaction reads the account (auth token, fallback URL) and stores
   the call (``CA`` + channel uuid, status ``ringing``);
4. runs the TwiML (:class:`~fsconf.calls.runner.CallRunner`), storing
   ``in-progress`` at answer, every error as an Alert, and the final status;
5. hangs the channel up if the program left it up (the server then says
   ``exit``).

A leg fsconf dialled itself (REST Participants create) carries the channel
variable ``fsconf_dialout=<CallSid>``: it has no TwiML, and goes to the
dial-out handler instead (:mod:`fsconf.service.dialout`), which joins it to
its conference with the REST parameters.

A call whose account is unknown is refused (``CALL_REJECTED``) and not
stored: the Call and Alert rows need an account. A storage failure that a
retry cannot outlive (a bug: integrity, programming) is logged and never
interrupts the call. While the database is only *away* (connection refused or
lost, SQLite locked by another process or read-only), the call waits for it,
as the conference's rows do (:mod:`fsconf.service.conferences`): nothing is
refused or lost, the channel stays up, and the log says once (then every
10 s) ``CA…: waiting for the database to store <what>: <error class>`` (the
class only: the text may name the host or user). A caller who hangs up while
the call's first row waits is let go.
Logs carry the CallSid; the auth token is never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import gevent
from sqlalchemy.orm import Session, sessionmaker

from fsconf.calls.audio import AudioConfig
from fsconf.calls.fetch import Fetcher
from fsconf.calls.gateway import CallHandle, ConferenceGateway, NoConferenceGateway
from fsconf.calls.params import CallParams
from fsconf.calls.program import ProgramConfig, RecordAlert
from fsconf.calls.runner import CallRunner
from fsconf.calls.voices import TtsConfig
from fsconf.errors import EslError, StoreError
from fsconf.esl.outbound import OutboundSession
from fsconf.redact import log_url
from fsconf.store import (
    create_alert,
    create_call,
    get_account,
    transaction,
    update_call_status,
)
from fsconf.store.db import transient_cause

logger = logging.getLogger(__name__)

VOICE_URL_VARIABLE = "fsconf_voice_url"
DIALOUT_VARIABLE = "fsconf_dialout"
"""Set by fsconf's own originate: the CallSid of a REST-created participant."""
ACCOUNT_SID_VARIABLE = "fsconf_account_sid"
# CHANNEL_DATA names the caller profile "Caller-*" (and some builds "Channel-*").
_FROM_HEADERS = ("Caller-Caller-ID-Number", "Channel-Caller-ID-Number", "variable_caller_id_number")
_TO_HEADERS = (
    "Caller-Destination-Number",
    "Channel-Destination-Number",
    "variable_destination_number",
)


STORE_RETRY_INITIAL = 0.05
STORE_RETRY_CAP = 1.0
STORE_RETRY_LOG_EVERY = 10.0

T = TypeVar("T")


def until_stored(
    call_sid: str, what: str, attempt: Callable[[], T], *, give_up: Callable[[], bool]
) -> T:
    """``attempt()`` (one transaction), again while the database is away.

    Backoff 50 ms doubling to 1 s; one log line, then one every 10 s. Raises
    the :class:`StoreError` at once when it is not transient, or when
    ``give_up()`` says nobody waits for the result any more.
    """
    delay = STORE_RETRY_INITIAL
    last_logged: float | None = None
    while True:
        try:
            return attempt()
        except StoreError as error:
            cause = transient_cause(error)
            if cause is None or give_up():
                raise
            now = time.monotonic()
            if last_logged is None or now - last_logged >= STORE_RETRY_LOG_EVERY:
                logger.warning(
                    "%s: waiting for the database to store %s: %s",
                    call_sid,
                    what,
                    type(cause).__name__,
                )
                last_logged = now
        gevent.sleep(delay)
        delay = min(delay * 2, STORE_RETRY_CAP)


@dataclass(frozen=True, slots=True)
class CallSettings:
    """The defaults of ``fsconf serve`` (``FSCONF_ACCOUNT_SID``, ``FSCONF_VOICE_URL``...)."""

    account_sid: str
    voice_url: str = ""
    voice_method: str = "POST"
    tts: TtsConfig = field(default_factory=TtsConfig)
    default_hold: str = "local_stream://moh"
    max_idle_documents: int = 50


@dataclass(frozen=True, slots=True)
class _Application:
    call: CallParams
    voice_url: str
    voice_method: str
    auth_token: str
    fallback_url: str | None
    fallback_method: str


class DialOutLegs(Protocol):
    """Where answered dial-out legs go (:class:`fsconf.service.dialout.DialOut`)."""

    def answered(
        self,
        session: OutboundSession,
        make_handle: Callable[[OutboundSession, CallParams, str], CallHandle],
    ) -> None: ...


def _first(data: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = data.get(name)
        if value:
            return value
    return ""


class CallService:
    """Run every call FreeSWITCH hands to fsconf's outbound server."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: CallSettings,
        fetcher: Fetcher | None = None,
        gateway: ConferenceGateway | None = None,
        dialout: DialOutLegs | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.fetcher = fetcher or Fetcher()
        self.gateway = gateway or NoConferenceGateway()
        self.dialout = dialout

    def handle(self, session: OutboundSession) -> None:
        """The :class:`~fsconf.esl.outbound.OutboundServer` handler."""
        session.setup()
        if session.variable(DIALOUT_VARIABLE) is not None:
            if self.dialout is None:
                logger.error("%s: a dial-out leg, but dial-out is off: refused", session.log_name)
                session.hangup("CALL_REJECTED")
            else:
                self.dialout.answered(session, self._dialout_handle)
            return
        application = self._application(session)
        if application is None:
            if not session.hungup:
                session.hangup("CALL_REJECTED")
            return
        # Everything the call needs from the connect data is in its
        # CallParams now; the rest would stay for the whole call.
        session.keep_channel_data()
        call_sid = application.call.call_sid
        runner = CallRunner(
            session,
            application.call,
            auth_token=application.auth_token,
            fetcher=self.fetcher,
            gateway=self.gateway,
            config=ProgramConfig(
                tts=self.settings.tts,
                fallback_url=application.fallback_url,
                fallback_method=application.fallback_method,
                max_idle_documents=self.settings.max_idle_documents,
            ),
            audio_config=AudioConfig(
                default_hold=self.settings.default_hold,
                tts=self.settings.tts,
                max_idle_documents=self.settings.max_idle_documents,
            ),
            on_alert=lambda alert: self._store_alert(application.call, alert),
            on_answer=lambda: self._store_status(call_sid, "in-progress"),
        )
        status = "failed"
        try:
            status = runner.run(application.voice_url, application.voice_method).status
        finally:
            self._store_status(call_sid, status)
            if not session.hungup and not runner.hung_up:
                try:
                    session.hangup()
                except EslError as error:
                    logger.info("%s: final hangup: %s", call_sid, error)

    def _dialout_handle(
        self, session: OutboundSession, call: CallParams, auth_token: str
    ) -> CallHandle:
        """The handle a dial-out leg joins with: wait audio, alerts, as a TwiML call's."""
        return CallHandle(
            session,
            call,
            auth_token=auth_token,
            fetcher=self.fetcher,
            audio_config=AudioConfig(
                default_hold=self.settings.default_hold,
                tts=self.settings.tts,
                max_idle_documents=self.settings.max_idle_documents,
            ),
            on_alert=lambda error: self._store_alert(
                call, RecordAlert(error.code, str(error), error.url)
            ),
        )

    # --- steps -------------------------------------------------------------------------

    def _application(self, session: OutboundSession) -> _Application | None:
        data = session.channel_data
        uuid = session.uuid or ""
        call_sid = "CA" + uuid.replace("-", "")
        account_sid = session.variable(ACCOUNT_SID_VARIABLE) or self.settings.account_sid

        def attempt() -> _Application | None:
            with transaction(self.sessions) as db:
                account = get_account(db, sid=account_sid)
                if account is None:
                    logger.error("%s: unknown account %s: call refused", call_sid, account_sid)
                    return None
                voice_url = (
                    session.variable(VOICE_URL_VARIABLE)
                    or account.voice_url
                    or self.settings.voice_url
                )
                method = account.voice_method if account.voice_url else self.settings.voice_method
                call = CallParams(
                    account_sid=account_sid,
                    call_sid=call_sid,
                    from_=_first(data, *_FROM_HEADERS),
                    to=_first(data, *_TO_HEADERS),
                )
                create_call(
                    db,
                    sid=call_sid,
                    account_sid=account_sid,
                    from_=call.from_,
                    to=call.to,
                    direction="inbound",
                    status="ringing",
                    node=data.get("FreeSWITCH-Hostname"),
                )
                return _Application(
                    call=call,
                    voice_url=voice_url,
                    voice_method=method,
                    auth_token=account.auth_token,
                    fallback_url=account.fallback_url,
                    fallback_method=account.fallback_method,
                )

        try:
            application = until_stored(
                call_sid, "the call", attempt, give_up=lambda: session.hungup
            )
        except StoreError as error:
            logger.error("%s: cannot read the account or store the call: %s", call_sid, error)
            return None
        if application is None:
            return None
        if not application.voice_url:
            logger.error("%s: no voice URL (channel, account or FSCONF_VOICE_URL)", call_sid)
            return None
        return application

    def _store(self, call_sid: str, what: str, action: Callable[[Session], object]) -> None:
        def attempt() -> None:
            with transaction(self.sessions) as db:
                action(db)

        try:
            # Rows of a call that already exists: wait for the database even
            # after a hangup, so its final status is not lost.
            until_stored(call_sid, what, attempt, give_up=lambda: False)
        except StoreError as error:
            logger.error("%s: could not store %s: %s", call_sid, what, error)

    def _store_status(self, call_sid: str, status: str) -> None:
        self._store(
            call_sid,
            f"status {status}",
            lambda db: update_call_status(db, sid=call_sid, status=status),
        )

    def _store_alert(self, call: CallParams, alert: RecordAlert) -> None:
        logger.warning(
            "%s: alert %d: %s (%s)", call.call_sid, alert.code, alert.message, log_url(alert.url)
        )
        self._store(
            call.call_sid,
            f"alert {alert.code}",
            lambda db: create_alert(
                db,
                account_sid=call.account_sid,
                error_code=alert.code,
                message=alert.message,
                request_url=alert.url,
                call_sid=call.call_sid,
            ),
        )
