"""One call's TwiML program: a pure state machine (no I/O, no clock).

Theory of operation
-------------------
The shell (:mod:`fsconf.calls.runner`) and this module play ping-pong:
``start()`` returns the first :data:`Step` (always a :class:`Fetch` of the
voice URL); the shell performs it and hands the :data:`Result` to
``advance(program, result)``, which returns the next program and the next
step, until a :class:`Finished`. Redirect, hangup and the end of a document
are steps like any other, never exceptions.

Each verb expands into a short queue of steps; the queue drains one step per
``advance``, then the next verb expands. The expansions, as Twilio behaves:

* **Answer late.** Twilio answers only when the first verb that needs media
  runs (Say, Play, Dial). So an :class:`Answer` is queued in front of the
  first of those, and ``CallStatus`` is ``ringing`` until it completes.
  ``<Pause>`` before answer waits *unanswered*, as Twilio documents ("If
  <Pause> is the first verb, Twilio waits before picking up the call").
* ``<Say>`` -> ``speak <engine>|<voice>|<text>`` (voices table, text through
  ``sanitize_tts_text``); ``<Play>`` -> ``send_dtmf <digits>`` and/or
  ``playback http_cache://<url>``; ``loop`` is :attr:`Execute.loops`
  (0 = until the call moves on); ``<Pause>`` -> ``sleep <ms>``.
* ``<Reject>`` before answer -> :class:`RejectCall` (``busy`` ->
  ``USER_BUSY``, final status ``busy``; ``rejected`` -> ``CALL_REJECTED``,
  status ``no-answer``, as Twilio reports them). After answer it is a hangup.
* ``<Hangup>`` and the end of a document hang up (status ``completed``).
* ``<Dial><Conference>`` -> :class:`JoinConference`, answered with
  :class:`Dialed`. With ``action``: a :class:`Fetch` of the action with
  ``DialCallStatus`` (see :func:`dial_action_params`), whose TwiML replaces
  the document; without: the next verb. If the caller hung up in the room, the
  action is still requested (``CallStatus=completed``) and its answer ignored,
  as Twilio does.

**Errors** (a failed fetch, a bad document, an unplayable Play URL, a Redirect
loop) queue a :class:`RecordAlert` and then do what Twilio does: fetch the
account's fallback URL once per call, with ``ErrorCode`` and ``ErrorUrl``;
without a fallback (or when it fails too), say "An application error has
occurred" and hang up.

**Redirect loops.** A document that only redirects costs no time, so a loop
of them would spin the call forever. Twilio's voice product documents no
limit; its TwiML loop guard for messaging is 14106 "Document retrieval limit
reached" (limit 50, caused by "self referencing Redirect verb URL"). fsconf
counts documents fetched *in a row without running a verb that takes time*
(Say, Play, a Pause of 1 s or more, Dial) and fails the call with 14106 at
:attr:`ProgramConfig.max_idle_documents` (50). A loop that plays or pauses
between its Redirects (a polling hold loop) is legitimate and never capped.

Invariants: exactly one step is outstanding at a time; once :class:`Finished`
is returned the program accepts nothing more (:class:`ProgramError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Final

from fsconf.calls.params import CallParams, Pairs, error_params, with_extra
from fsconf.calls.voices import TtsConfig, select_voice
from fsconf.errors import EslArgumentError, FsconfError, TwimlError
from fsconf.esl import commands
from fsconf.twiml import (
    Audio,
    Dial,
    Hangup,
    Pause,
    Play,
    Redirect,
    Reject,
    RejectReason,
    Response,
    Say,
    Verb,
)
from fsconf.twiml.errors import HTTP_RETRIEVAL_FAILURE, SCHEMA_VALIDATION

#: Twilio's "Document retrieval limit reached" (see the module docstring).
DOCUMENT_LIMIT_REACHED: Final = 14106
#: What FreeSWITCH's playback answers when the media could not be fetched.
FILE_NOT_FOUND: Final = "FILE NOT FOUND"
ERROR_TEXT: Final = "We are sorry, an application error has occurred. Goodbye."


class ProgramError(FsconfError):
    """A result arrived that the program cannot accept in its state."""

    def __init__(self, waiting: object, result: object) -> None:
        super().__init__(f"cannot accept {result!r} while waiting for {waiting!r}")
        self.waiting = waiting
        self.result = result


class Purpose(Enum):
    """Why a document is fetched (the shell logs it; the program routes by it)."""

    VOICE = "voice"
    REDIRECT = "redirect"
    ACTION = "action"
    FALLBACK = "fallback"
    #: The Dial action after the caller hung up: requested, answer ignored.
    ACTION_AFTER_HANGUP = "action-after-hangup"


# --- steps (what the shell must do next) -----------------------------------


@dataclass(frozen=True, slots=True)
class Fetch:
    """Request ``url`` with ``params`` (signed) and parse the answer as TwiML."""

    url: str
    method: str
    params: Pairs
    purpose: Purpose


@dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``app arg`` on the channel ``loops`` times (0 = until the call ends)."""

    app: str
    arg: str | None
    loops: int = 1


@dataclass(frozen=True, slots=True)
class RecordAlert:
    code: int
    message: str
    url: str | None


@dataclass(frozen=True, slots=True)
class HangupCall:
    cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True, slots=True)
class RejectCall:
    cause: str


@dataclass(frozen=True, slots=True)
class JoinConference:
    """Hand ``dial`` (and its Conference noun) to the conference gateway."""

    dial: Dial


@dataclass(frozen=True, slots=True)
class Finished:
    """The program is over; ``status`` is the call's final CallStatus."""

    status: str


Step = Fetch | Answer | Execute | RecordAlert | HangupCall | RejectCall | JoinConference | Finished


# --- results (what the shell reports back) ---------------------------------


@dataclass(frozen=True, slots=True)
class Completed:
    """Answer/Execute/RecordAlert/HangupCall/RejectCall done.

    ``response`` is the last ``Application-Response`` of an Execute.
    """

    response: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    document: Response | Audio


@dataclass(frozen=True, slots=True)
class FetchFailed:
    error: TwimlError


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """How a participant left the conference (from the conference gateway).

    ``status`` is the DialCallStatus (``completed`` after being in the
    conference, ``failed`` when it could not be joined). ``params`` are added
    to the action request. ``request_action=False`` continues with the next
    verb even when the Dial has an action (e.g. a duplicate participantLabel,
    error 16025, "the call continues with the next verb").
    """

    status: str = "completed"
    hung_up: bool = False
    params: Pairs = ()
    request_action: bool = True


@dataclass(frozen=True, slots=True)
class Dialed:
    outcome: DialOutcome


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    pass


Result = Completed | Fetched | FetchFailed | Dialed | CallerHungUp


# --- the program -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgramConfig:
    tts: TtsConfig = field(default_factory=TtsConfig)
    fallback_url: str | None = None
    fallback_method: str = "POST"
    max_idle_documents: int = 50
    error_text: str = ERROR_TEXT


class Waiting(Enum):
    DOCUMENT = "document"
    STEP = "step"
    DIAL = "dial"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Program:
    call: CallParams
    config: ProgramConfig
    waiting: Waiting = Waiting.DOCUMENT
    current: Step | None = None
    queue: tuple[Step, ...] = ()
    verbs: tuple[Verb, ...] = ()
    index: int = 0
    answered: bool = False
    idle_documents: int = 0
    fallback_tried: bool = False
    failing: bool = False
    dial: Dial | None = None

    @property
    def call_status(self) -> str:
        return "in-progress" if self.answered else "ringing"

    def params(self, extra: Pairs = ()) -> Pairs:
        return with_extra(self.call.standard(self.call_status), extra)


def start(
    call: CallParams, voice_url: str, voice_method: str, config: ProgramConfig | None = None
) -> tuple[Program, Step]:
    """The program for a new call, and its first step: fetch the voice URL."""
    program = Program(call=call, config=config or ProgramConfig())
    fetch = Fetch(voice_url, voice_method.upper(), program.params(), Purpose.VOICE)
    return _run(replace(program, idle_documents=1), fetch)


def advance(program: Program, result: Result) -> tuple[Program, Step]:
    """Feed the result of the outstanding step; get the next step."""
    if program.waiting is Waiting.DONE:
        raise ProgramError(program.waiting, result)
    if isinstance(result, CallerHungUp):
        return _caller_hung_up(program)
    current = program.current
    if isinstance(current, Fetch) and isinstance(result, Fetched | FetchFailed):
        return _fetch_done(program, current, result)
    if isinstance(current, JoinConference) and isinstance(result, Dialed):
        return _dialed(program, current.dial, result.outcome)
    if program.waiting is Waiting.STEP and isinstance(result, Completed):
        return _step_done(program, result)
    raise ProgramError(program.waiting, result)


# --- transitions --------------------------------------------------------------


def _run(program: Program, step: Step) -> tuple[Program, Step]:
    """Make ``step`` the outstanding one."""
    if isinstance(step, Fetch):
        waiting = Waiting.DOCUMENT
    elif isinstance(step, JoinConference):
        waiting = Waiting.DIAL
    elif isinstance(step, Finished):
        waiting = Waiting.DONE
    else:
        waiting = Waiting.STEP
    return replace(program, current=step, waiting=waiting), step


def _next(program: Program) -> tuple[Program, Step]:
    """The next queued step, or the next verb, or the end of the document."""
    if program.queue:
        step, *rest = program.queue
        return _run(replace(program, queue=tuple(rest)), step)
    if program.index >= len(program.verbs):
        return _queue(program, [HangupCall(), Finished("completed")])
    verb = program.verbs[program.index]
    program = replace(program, index=program.index + 1)
    try:
        return _expand(program, verb)
    except EslArgumentError as error:
        # The parser admitted a value a FreeSWITCH builder refuses: nothing
        # is sent, the document is treated as invalid.
        reason = f"<{type(verb).__name__}> line {verb.line}: {error.reason}"
        return _fail(program, TwimlError(SCHEMA_VALIDATION, reason, line=verb.line))


def _queue(program: Program, steps: list[Step]) -> tuple[Program, Step]:
    return _next(replace(program, queue=tuple(steps) + program.queue))


def _fetch_done(
    program: Program, fetch: Fetch, result: Fetched | FetchFailed
) -> tuple[Program, Step]:
    if fetch.purpose is Purpose.ACTION_AFTER_HANGUP:
        return _run(program, Finished("completed"))
    if isinstance(result, FetchFailed):
        error = result.error
        if error.url is None:
            error = TwimlError(
                error.code, error.reason, element=error.element, line=error.line, url=fetch.url
            )
        return _fail(program, error)
    document = result.document
    if isinstance(document, Audio):
        # A URL that answers with audio is played once, then the call ends.
        verbs: tuple[Verb, ...] = (Play(url=document.url, loop=1, digits=None, line=1),)
    else:
        verbs = document.verbs
    return _next(replace(program, verbs=verbs, index=0, queue=()))


def _step_done(program: Program, result: Completed) -> tuple[Program, Step]:
    current = program.current
    if isinstance(current, Answer):
        program = replace(program, answered=True)
    if (
        isinstance(current, Execute)
        and current.app == "playback"
        and result.response == FILE_NOT_FOUND
    ):
        # Twilio reports an unplayable <Play> URL (11200) and moves on.
        message = f"could not play {current.arg}"
        return _queue(program, [RecordAlert(HTTP_RETRIEVAL_FAILURE, message, current.arg)])
    return _next(program)


def _dialed(program: Program, dial: Dial, outcome: DialOutcome) -> tuple[Program, Step]:
    if outcome.hung_up:
        return _caller_hung_up(program, dial=dial, outcome=outcome)
    if dial.action is None or not outcome.request_action:
        return _next(program)
    fetch = Fetch(
        dial.action,
        str(dial.method),
        program.params(dial_action_params(outcome)),
        Purpose.ACTION,
    )
    return _run(replace(program, idle_documents=1), fetch)


def dial_action_params(outcome: DialOutcome) -> Pairs:
    """What a Dial action adds for a conference.

    ``DialCallStatus`` only: Twilio's <Dial> page says DialCallSid ("the call
    sid of the new call leg") and DialCallDuration are *not sent after dialing
    a conference*, since no new call leg exists. The conference gateway may
    add its own (``outcome.params``).
    """
    return with_extra((("DialCallStatus", outcome.status),), outcome.params)


def _caller_hung_up(
    program: Program, *, dial: Dial | None = None, outcome: DialOutcome | None = None
) -> tuple[Program, Step]:
    status = "completed" if program.answered else "no-answer"
    program = replace(program, queue=())
    if dial is not None and outcome is not None and dial.action and outcome.request_action:
        extra = dial_action_params(outcome)
        params = with_extra(program.call.standard("completed"), extra)
        fetch = Fetch(dial.action, str(dial.method), params, Purpose.ACTION_AFTER_HANGUP)
        return _run(program, fetch)
    return _run(program, Finished(status))


def _fail(program: Program, error: TwimlError) -> tuple[Program, Step]:
    """Record the alert, then the fallback URL once, else speak and hang up."""
    alert = RecordAlert(error.code, str(error), error.url)
    fallback = program.config.fallback_url
    if fallback and not program.fallback_tried and not program.failing:
        url = error.url or ""
        fetch = Fetch(
            fallback,
            program.config.fallback_method.upper(),
            program.params(error_params(error.code, url)),
            Purpose.FALLBACK,
        )
        program = replace(program, fallback_tried=True, idle_documents=0, verbs=(), index=0)
        return _queue(replace(program, queue=()), [alert, fetch])
    if program.failing:
        return _queue(replace(program, queue=()), [alert, HangupCall(), Finished("completed")])
    speak = _speak(program, program.config.error_text, None, None, 1)
    steps: list[Step] = [alert]
    if not program.answered:
        steps.append(Answer())
    steps += [speak, HangupCall(), Finished("completed")]
    return _queue(replace(program, failing=True, queue=(), verbs=(), index=0), steps)


# --- verbs -------------------------------------------------------------------


def _speak(
    program: Program, text: str, voice: str | None, language: str | None, loops: int
) -> Execute:
    return speak_step(program.config.tts, text, voice, language, loops)


def speak_step(
    tts: TtsConfig, text: str, voice: str | None, language: str | None, loops: int
) -> Execute:
    """``speak <engine>|<voice>|<text>`` for a <Say> (text made safe first)."""
    chosen = select_voice(tts, voice, language)
    arg = commands.speak_arg(chosen.engine, chosen.voice, commands.sanitize_tts_text(text))
    return Execute("speak", arg, loops)


def media_steps(tts: TtsConfig, verb: Say | Play | Pause) -> list[Execute]:
    """What a media verb runs on the channel (shared with the wait/hold audio)."""
    if isinstance(verb, Say):
        return [speak_step(tts, verb.text, verb.voice, verb.language, verb.loop)]
    if isinstance(verb, Play):
        return _play_steps(verb)
    if verb.length == 0:
        return []
    return [Execute("sleep", str(verb.length * 1000))]


def _with_media(program: Program, steps: list[Step]) -> tuple[Program, Step]:
    """Steps of a verb that needs media: answer first if not yet answered."""
    if not program.answered:
        steps = [Answer(), *steps]
    return _queue(replace(program, idle_documents=0), steps)


def _expand(program: Program, verb: Verb) -> tuple[Program, Step]:
    if isinstance(verb, Say | Play):
        return _with_media(program, list(media_steps(program.config.tts, verb)))
    if isinstance(verb, Pause):
        if verb.length == 0:
            return _next(program)
        return _queue(
            replace(program, idle_documents=0), list(media_steps(program.config.tts, verb))
        )
    if isinstance(verb, Redirect):
        return _redirect(program, verb)
    if isinstance(verb, Hangup):
        return _queue(program, [HangupCall(), Finished("completed")])
    if isinstance(verb, Reject):
        return _reject(program, verb)
    return _with_media(program, [JoinConference(verb)])


def _play_steps(verb: Play) -> list[Execute]:
    steps: list[Execute] = []
    if verb.digits:
        steps.append(Execute("send_dtmf", send_dtmf_arg(verb.digits)))
    if verb.url:
        steps.append(Execute("playback", commands.http_media(verb.url), verb.loop))
    return steps


def send_dtmf_arg(digits: str) -> str:
    """The argument of ``send_dtmf``: Twilio's digits; ``w`` is a 0.5 s wait in both.

    commands.py has no builder for it yet, so the alphabet is checked here.
    """
    if not digits or len(digits) > 256 or any(c not in "0123456789*#wW" for c in digits):
        raise EslArgumentError("digits", digits, "must be 0-9 * # w W")
    return digits


def _redirect(program: Program, verb: Redirect) -> tuple[Program, Step]:
    count = program.idle_documents + 1
    if count > program.config.max_idle_documents:
        reason = f"{count} documents in a row without a verb that takes time: Redirect loop"
        return _fail(program, TwimlError(DOCUMENT_LIMIT_REACHED, reason, url=verb.url))
    fetch = Fetch(verb.url, str(verb.method), program.params(), Purpose.REDIRECT)
    return _run(replace(program, idle_documents=count, queue=()), fetch)


def _reject(program: Program, verb: Reject) -> tuple[Program, Step]:
    if program.answered:
        return _queue(program, [HangupCall(), Finished("completed")])
    if verb.reason is RejectReason.BUSY:
        return _queue(program, [RejectCall("USER_BUSY"), Finished("busy")])
    return _queue(program, [RejectCall("CALL_REJECTED"), Finished("no-answer")])
