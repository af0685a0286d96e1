"""Dial-out: the Participants resource's create (fsconf dials, the callee joins).

Theory of operation
-------------------
:meth:`DialOut.create` runs in the REST request's greenlet:

1. From and To are checked against closed alphabets (``+`` and digits,
   ``sip:user@host``, ``client:name``) and the whole ``originate`` line is
   built *before* anything is stored, so a bad value stores nothing and sends
   nothing to FreeSWITCH (the command builders check again);
2. one transaction resolves the conference (a SID must be active; a friendly
   name finds the active one or creates it, as Twilio does), stores the Call
   row (``outbound-api``, ``queued``) and the participant row (``queued``), so
   the REST API answers 201 at once;
3. a greenlet sends ``bgapi originate {origination_uuid=<ours>,
   fsconf_dialout=<CallSid>,...}<FSCONF_DIAL_STRING> '&socket(<fsconf>
   async full)'`` with our Job-UUID.

The call then moves along Twilio's statuses, each step stored (Call row,
participant row) with its StatusCallback (outbox) in one transaction:

* ``initiated`` once FreeSWITCH accepted the job;
* ``ringing`` when the leg rings: the first CHANNEL_PROGRESS (a 180) or
  CHANNEL_PROGRESS_MEDIA (a 183, early media) of our origination uuid, which
  the inbound connection follows (:meth:`DialOut.on_progress`). A leg answered
  without ringing first still reports ``ringing`` before ``answered`` (skipped
  steps are filled in, below); a leg refused before it rang (busy, rejected)
  goes from ``initiated`` to its final status, as Twilio reports it;
* ``in-progress`` (``answered``) when the answered leg reaches the outbound
  server: :class:`~fsconf.calls.service.CallService` sees ``fsconf_dialout``
  and hands the session to :meth:`DialOut.answered`, which joins the
  conference with the REST parameters instead of fetching TwiML;
* ``completed`` (with ``CallDuration``) when the participant left and the leg
  was hung up; or ``busy`` / ``no-answer`` / ``failed`` from the job's
  ``-ERR <cause>`` (captures B2.12), which also marks the participant
  ``failed``.

Invariants: a leg is only accepted by the outbound server if it is one we
originated (its CallSid is pending here *and* matches the channel uuid); the
steps of one leg are applied under its lock, in order, never twice, and a
skipped step (an answer seen before the job's reply) is filled in.
"""

from __future__ import annotations

import logging
import re
import uuid as uuid_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import gevent
import gevent.event
import gevent.lock
from sqlalchemy.orm import Session, sessionmaker

from fsconf.calls.gateway import CallHandle
from fsconf.calls.params import API_VERSION, CallParams
from fsconf.calls.service import DIALOUT_VARIABLE
from fsconf.conference.model import (
    DEFAULT_TIME_LIMIT,
    DEFAULT_WAIT_URL,
    Beep,
    ConferenceStatus,
    HttpMethod,
    JitterBufferSize,
    ParticipantSettings,
    Record,
    RecordingEvent,
    StatusCallbackToken,
    Trim,
)
from fsconf.errors import EslError, StoreError, TwilioApiError
from fsconf.esl import commands
from fsconf.esl.frames import Event
from fsconf.esl.inbound import InboundClient
from fsconf.esl.outbound import OutboundSession
from fsconf.service.conferences import ConferenceService
from fsconf.service.control import ParticipantCreate
from fsconf.store import models, repositories
from fsconf.store.db import transaction
from fsconf.store.ids import InvalidSidError, call_sid_from_uuid, is_sid
from fsconf.store.times import format_rfc2822, utc_now
from fsconf.webhooks.outbox import enqueue

logger = logging.getLogger(__name__)


DIRECTION = "outbound-api"
TO_INVALID = 21211
FROM_INVALID = 21212

_PHONE = re.compile(r"\+[0-9]{1,15}")
_SIP = re.compile(r"sip:[A-Za-z0-9_.+-]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?")
_CLIENT = re.compile(r"client:[A-Za-z0-9_.-]{1,64}")
ADDRESS_FORMS = (_PHONE, _SIP, _CLIENT)

CAUSE_STATUS = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no-answer",
    "NO_USER_RESPONSE": "no-answer",
    "ORIGINATOR_CANCEL": "canceled",
}
"""FreeSWITCH hangup cause of a failed originate -> the call's status; else failed."""

TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
PROGRESS = ("initiated", "ringing", "in-progress")
_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
CALLBACK_EVENT = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}
"""Call status -> the StatusCallbackEvent word that asks for it (terminal: completed)."""
_CALL_ROW_STATUS = {"ringing": "ringing", "in-progress": "in-progress"}


def check_address(name: str, value: str, code: int) -> str:
    """From/To: a phone number (``+`` digits), ``sip:user@host`` or ``client:name``."""
    if not any(form.fullmatch(value) for form in ADDRESS_FORMS):
        raise TwilioApiError(
            code,
            f"Invalid '{name}' {value!r}: expected +<digits>, sip:user@host or client:name",
            400,
        )
    return value


def participant_settings_of(create: ParticipantCreate) -> ParticipantSettings:
    """The REST create parameters in the engine's types (as a ``<Conference>`` would)."""
    return ParticipantSettings(
        muted=create.muted,
        beep=Beep(create.beep),
        start_conference_on_enter=create.start_conference_on_enter,
        end_conference_on_exit=create.end_conference_on_exit,
        participant_label=create.label,
        jitter_buffer_size=JitterBufferSize(create.jitter_buffer_size),
        wait_url=create.wait_url if create.wait_url is not None else DEFAULT_WAIT_URL,
        wait_method=HttpMethod(create.wait_method.upper()),
        max_participants=create.max_participants,
        record=Record(create.conference_record),
        region=create.region,
        trim=Trim(create.conference_trim),
        coach=create.call_sid_to_coach if create.coaching else None,
        status_callback_event=frozenset(
            StatusCallbackToken(word) for word in create.conference_status_callback_event
        ),
        status_callback=create.conference_status_callback,
        status_callback_method=HttpMethod(create.conference_status_callback_method.upper()),
        recording_status_callback=create.conference_recording_status_callback,
        recording_status_callback_method=HttpMethod(
            create.conference_recording_status_callback_method.upper()
        ),
        recording_status_callback_event=frozenset(
            RecordingEvent(word) for word in create.conference_recording_status_callback_event
        ),
        time_limit=create.time_limit or DEFAULT_TIME_LIMIT,
    )


@dataclass(eq=False)
class Leg:
    """One dialled call, from create to its final status."""

    call_sid: str
    uuid: str
    account_sid: str
    conference_sid: str
    friendly_name: str
    create: ParticipantCreate
    settings: ParticipantSettings
    command: str
    auth_token: str = field(repr=False)
    status: str = "queued"
    sequence: int = 0
    answered_at: datetime | None = None
    rang: bool = False  # a progress event of ours arrived (see on_progress)
    lock: gevent.lock.RLock = field(default_factory=gevent.lock.RLock, repr=False)
    connected: gevent.event.Event = field(default_factory=gevent.event.Event, repr=False)
    finished: gevent.event.Event = field(default_factory=gevent.event.Event, repr=False)


HandleFactory = Callable[[OutboundSession, CallParams, str], CallHandle]
"""(session, call, auth token) -> the CallHandle the conference layer drives."""


class DialOut:
    """Originate REST-created participants and follow them to their end."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        conferences: ConferenceService,
        nodes: Sequence[InboundClient],
        socket_address: Callable[[], tuple[str, int]],
        dial_string: str = "loopback/{to}/default",
        notify_callbacks: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
        connect_timeout: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.conferences = conferences
        self.nodes = nodes
        self.socket_address = socket_address
        self.dial_string = dial_string
        self.notify_callbacks = notify_callbacks
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.legs: dict[str, Leg] = {}
        self._greenlets: set[gevent.Greenlet] = set()

    # --- create (the REST request) ---------------------------------------------------

    def create(self, *, account_sid: str, conference: str, create: ParticipantCreate) -> str:
        to = check_address("To", create.to, TO_INVALID)
        from_ = check_address("From", create.from_, FROM_INVALID)
        channel_uuid = str(uuid_module.uuid4())
        call_sid = call_sid_from_uuid(channel_uuid)  # on_progress finds the leg by it
        command = self._command(channel_uuid, call_sid, from_, to, create.timeout)
        settings = participant_settings_of(create)
        now = self.clock()
        with transaction(self.sessions) as db:
            account = repositories.get_account(db, sid=account_sid)
            if account is None:
                raise TwilioApiError(20404, f"Account {account_sid} was not found", 404)
            row = self._conference(db, account_sid, conference, create)
            repositories.create_call(
                db,
                sid=call_sid,
                account_sid=account_sid,
                from_=from_,
                to=to,
                direction=DIRECTION,
                status="queued",
                now=now,
            )
            try:
                repositories.add_participant(
                    db,
                    conference_sid=row.sid,
                    call_sid=call_sid,
                    label=create.label,
                    status="queued",
                    muted=create.muted,
                    coaching=create.coaching,
                    call_sid_to_coach=create.call_sid_to_coach,
                    start_conference_on_enter=create.start_conference_on_enter,
                    end_conference_on_exit=create.end_conference_on_exit,
                    beep=create.beep,
                    wait_url=create.wait_url,
                    wait_method=create.wait_method.upper(),
                    jitter_buffer_size=create.jitter_buffer_size,
                    now=now,
                )
            except repositories.DuplicateLabelError:
                raise TwilioApiError(
                    16025, f"Participant label {create.label!r} is already in use", 400
                ) from None
            leg = Leg(
                call_sid=call_sid,
                uuid=channel_uuid,
                account_sid=account_sid,
                conference_sid=row.sid,
                friendly_name=row.friendly_name,
                create=create,
                settings=settings,
                command=command,
                auth_token=account.auth_token,
            )
        self.legs[call_sid] = leg
        logger.info(
            "%s: dial-out queued to join %s (%s)", call_sid, leg.conference_sid, account_sid
        )
        greenlet = gevent.spawn(self._dial, leg)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        return call_sid

    def _command(self, channel_uuid: str, call_sid: str, from_: str, to: str, timeout: int) -> str:
        host, port = self.socket_address()
        try:
            return commands.originate_socket_cmd(
                origination_uuid=channel_uuid,
                endpoint=self.dial_string.replace("{to}", to),
                host=host,
                port=port,
                variables={
                    DIALOUT_VARIABLE: call_sid,
                    "origination_caller_id_number": from_,
                    "hangup_after_conference": "false",
                },
                timeout=timeout,
            )
        except EslError as error:
            # check_address lets nothing through that the builders refuse; this
            # is the second lock on the door, and nothing has been stored yet.
            raise TwilioApiError(TO_INVALID, f"Cannot dial {to!r}: {error}", 400) from None

    def _conference(
        self, db: Session, account_sid: str, conference: str, create: ParticipantCreate
    ) -> models.Conference:
        if is_sid(conference, "CF"):
            row = repositories.get_conference(db, sid=conference)
            if row is None or row.account_sid != account_sid or row.status == "completed":
                raise TwilioApiError(20404, f"Conference {conference} is not active", 404)
            return row
        row, created = repositories.get_or_create_active_conference(
            db,
            account_sid=account_sid,
            friendly_name=conference,
            region=create.region,
            max_participants=create.max_participants,
            record=create.conference_record,
            trim=create.conference_trim,
            status_callback=create.conference_status_callback,
            status_callback_method=create.conference_status_callback_method.upper(),
            status_callback_events=create.conference_status_callback_event,
            recording_status_callback=create.conference_recording_status_callback,
            recording_status_callback_method=(
                create.conference_recording_status_callback_method.upper()
            ),
            recording_status_callback_events=create.conference_recording_status_callback_event,
        )
        if created:
            logger.info("%s: conference %r created for a dial-out", row.sid, conference)
        return row

    # --- the originate ----------------------------------------------------------------

    def _node(self) -> InboundClient | None:
        for node in self.nodes:
            if node.connected:
                return node
        return None

    def _dial(self, leg: Leg) -> None:
        node = self._node()
        if node is None:
            logger.error("%s: no FreeSWITCH node connected: dial-out failed", leg.call_sid)
            self.advance(leg, "failed")
            return
        job_uuid = str(uuid_module.uuid4())
        try:
            job = node.bgapi(leg.command, job_uuid=job_uuid)
        except EslError as error:
            logger.error("%s: originate refused: %s", leg.call_sid, error)
            self.advance(leg, "failed")
            return
        logger.info("%s: originating (job accepted by %s)", leg.call_sid, node.label)
        self.advance(leg, "initiated")
        try:
            result = job.get(timeout=leg.create.timeout + self.connect_timeout)
        except gevent.Timeout:
            logger.error("%s: no BACKGROUND_JOB for the originate", leg.call_sid)
            node.forget_job(job_uuid)
            self._give_up(leg, node)
            return
        except EslError as error:
            logger.error("%s: originate lost: %s", leg.call_sid, error)
            self.advance(leg, "failed")
            return
        reply = (result.body or "").strip()
        if reply.startswith("+OK"):
            if not leg.connected.wait(self.connect_timeout):
                logger.error("%s: answered, but never reached the outbound server", leg.call_sid)
                self._give_up(leg, node)
            return
        cause = reply.removeprefix("-ERR").strip() or "UNKNOWN"
        status = CAUSE_STATUS.get(cause, "failed")
        logger.info("%s: originate failed: %s -> %s", leg.call_sid, cause, status)
        self.advance(leg, status)

    def _give_up(self, leg: Leg, node: InboundClient) -> None:
        try:
            node.api(commands.uuid_kill_cmd(leg.uuid), check=False)
        except EslError as error:
            logger.info("%s: uuid_kill: %s", leg.call_sid, error)
        self.advance(leg, "failed")

    def on_progress(self, event: Event) -> None:
        """CHANNEL_PROGRESS or CHANNEL_PROGRESS_MEDIA from the inbound connection:
        a leg we originated rings (other channels' progress is not ours)."""
        uuid = event.unique_id or ""
        try:
            call_sid = call_sid_from_uuid(uuid)
        except InvalidSidError:
            return
        leg = self.legs.get(call_sid)  # keyed by the CallSid its uuid makes
        if leg is not None:
            # Before the lock: the originate's end (a BACKGROUND_JOB right behind
            # this event) may take it first, and must still report the ring.
            leg.rang = True
            self.advance(leg, "ringing")

    # --- the answered leg (from CallService.handle) -------------------------------------

    def answered(self, session: OutboundSession, make_handle: HandleFactory) -> None:
        """Run an answered dial-out leg: join its conference, then hang up."""
        call_sid = session.variable(DIALOUT_VARIABLE) or ""
        leg = self.legs.get(call_sid)
        if leg is None or session.uuid != leg.uuid or leg.status in TERMINAL:
            logger.error("%s: not a dial-out of this fsconf: call refused", session.log_name)
            session.hangup("CALL_REJECTED")
            return
        leg.connected.set()
        leg.answered_at = self.clock()
        self.advance(leg, "in-progress")
        call = CallParams(
            account_sid=leg.account_sid,
            call_sid=leg.call_sid,
            from_=leg.create.from_,
            to=leg.create.to,
            direction=DIRECTION,
        )
        if not self._conference_still_active(leg):
            # Created into a conference (by SID) that has ended since: joining by
            # name would put the callee into another conference, or a new one.
            logger.warning(
                "%s: conference %s ended while it rang: hanging up",
                leg.call_sid,
                leg.conference_sid,
            )
            self.advance(leg, "failed")
            session.hangup()
            return
        try:
            outcome = self.conferences.join_settings(
                make_handle(session, call, leg.auth_token), leg.friendly_name, leg.settings
            )
            logger.info("%s: left conference %s (%s)", leg.call_sid, leg.friendly_name, outcome)
        finally:
            # A participant Twilio dialled has no TwiML to go on with: it hangs up.
            if not session.hungup:
                try:
                    session.hangup()
                except EslError as error:
                    logger.info("%s: final hangup: %s", leg.call_sid, error)
            self.advance(leg, "completed")

    # --- status steps -------------------------------------------------------------------

    def _conference_still_active(self, leg: Leg) -> bool:
        room = self.conferences.rooms.get(leg.conference_sid)
        if room is not None:
            return room.state.status is not ConferenceStatus.COMPLETED
        with transaction(self.sessions) as db:
            conference = repositories.get_conference(db, sid=leg.conference_sid)
            return conference is not None and conference.status != "completed"

    def advance(self, leg: Leg, status: str) -> None:
        """Move ``leg`` to ``status``: rows and callbacks, skipped steps filled in."""
        with leg.lock:
            if leg.status in TERMINAL:
                return
            if status in TERMINAL:
                # A leg that rang says so before its end (no-answer after ringing).
                reached, final = ("ringing" if leg.rang else leg.status), [status]
            else:
                reached, final = status, []
            steps = [s for s in PROGRESS if _RANK[leg.status] < _RANK[s] <= _RANK[reached]]
            steps += final
            if not steps:
                return
            now = self.clock()
            try:
                with transaction(self.sessions) as db:
                    for step in steps:
                        self._record(db, leg, step, now)
            except StoreError as error:
                logger.error("%s: could not store status %s: %s", leg.call_sid, status, error)
            leg.status = steps[-1]
            if leg.status in TERMINAL:
                self.legs.pop(leg.call_sid, None)
                leg.finished.set()
        logger.info("%s: call %s", leg.call_sid, leg.status)
        self.notify_callbacks()

    def _record(self, db: Session, leg: Leg, step: str, now: datetime) -> None:
        row_status = _CALL_ROW_STATUS.get(step, step if step in TERMINAL else None)
        if row_status is not None:
            repositories.update_call_status(db, sid=leg.call_sid, status=row_status, now=now)
        participant = repositories.get_participant(
            db, conference_sid=leg.conference_sid, call_sid=leg.call_sid
        )
        waiting = participant is not None and participant.status in ("queued", "ringing")
        if step == "ringing" and waiting:
            repositories.update_participant(
                db, conference_sid=leg.conference_sid, call_sid=leg.call_sid, status="ringing"
            )
        if step in TERMINAL and participant is not None and participant.present:
            # Never joined (busy, no answer, or the join itself failed).
            repositories.mark_participant_left(
                db, conference_sid=leg.conference_sid, call_sid=leg.call_sid, status="failed"
            )
            self._end_if_abandoned(db, leg, now)
        self._callback(db, leg, step, now)

    def _end_if_abandoned(self, db: Session, leg: Leg, now: datetime) -> None:
        """A conference created for dial-outs that all failed ends (nobody is in it)."""
        if leg.conference_sid in self.conferences.rooms:
            return
        conference = repositories.get_conference(db, sid=leg.conference_sid)
        if conference is None or conference.status != "init":
            return
        if repositories.count_present_participants(db, conference_sid=leg.conference_sid):
            return
        repositories.end_conference(
            db, sid=leg.conference_sid, reason="last-participant-left", now=now
        )
        logger.info("%s: conference ended: its only dial-out failed", leg.conference_sid)

    def _callback(self, db: Session, leg: Leg, step: str, now: datetime) -> None:
        create = leg.create
        event = "completed" if step in TERMINAL else CALLBACK_EVENT[step]
        if not create.status_callback or event not in create.status_callback_event:
            return
        params = [
            ("AccountSid", leg.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", leg.call_sid),
            ("CallStatus", step),
            ("Called", create.to),
            ("Caller", create.from_),
            ("CallbackSource", "call-progress-events"),
            ("Direction", DIRECTION),
            ("From", create.from_),
            ("SequenceNumber", str(leg.sequence)),
            ("Timestamp", format_rfc2822(now)),
            ("To", create.to),
        ]
        if step in TERMINAL:
            seconds = int((now - leg.answered_at).total_seconds()) if leg.answered_at else 0
            params.append(("CallDuration", str(max(seconds, 0))))
        enqueue(
            db,
            account_sid=leg.account_sid,
            url=create.status_callback,
            method=create.status_callback_method.upper(),
            params=params,
            kind="call-progress",
            call_sid=leg.call_sid,
            sequence_number=leg.sequence,
            ordering_key=leg.call_sid,
            now=now,
        )
        leg.sequence += 1

    # --- life cycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop following legs (``fsconf serve`` is stopping)."""
        for greenlet in list(self._greenlets):
            greenlet.kill(block=False)
