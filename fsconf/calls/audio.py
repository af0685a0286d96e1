"""Wait, hold and announce audio: a TwiML URL played on one channel until stopped.

Theory of operation
-------------------
An :class:`AudioLoop` owns one greenlet that plays, on the participant's own
channel, what Twilio plays for a waitUrl (and for a holdUrl or announceUrl):

* ``None``: the default hold music, :attr:`AudioConfig.default_hold`. It is a
  setting because ``local_stream://moh`` fails *silently* on a FreeSWITCH
  without a configured stream (captures, B10): set it to a playable file or
  ``http(s)`` URL (played through ``http_cache://``) in production.
* ``""``: silence, ``playback silence_stream://-1`` (endless, breakable).
* a URL: fetched once (signed, like every request). Audio (an MP3/WAV content
  type) is played directly, looping. TwiML must use only Play, Say, Pause and
  Redirect (``restricted``); the document is replayed from the top when it
  ends, a Redirect fetches the next one, and a document that plays nothing is
  replaced by silence (no busy loop on ``<Response/>``).

**Failure.** If the *first* fetch fails, nothing is played: :attr:`error` is
set, :attr:`ready` fires, and ``on_error`` is called, so the conference layer
can do what the spec says ("the Conference will not be fully established")
and continue the call. A later failure (a Redirect inside the wait document)
is reported the same way and the loop goes on with silence: a wait must not
drop the call.

**Stopping.** :meth:`stop` sets a flag the greenlet checks before every
application, then breaks the running one with plain ``uuid_break <uuid>``,
never ``uuid_break <uuid> all``: with event-lock, ``all`` also discards the
messages queued behind it (B12), such as the ``conference`` app the caller
queued to join. An application can be in flight (sent, not yet started) when
the break lands, so the break is repeated until the greenlet has returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import gevent
import gevent.event

from fsconf.calls.program import FILE_NOT_FOUND, Execute, media_steps
from fsconf.calls.voices import TtsConfig
from fsconf.errors import EslDisconnected, EslError, TwimlError
from fsconf.esl import commands
from fsconf.esl.frames import Event
from fsconf.redact import log_url
from fsconf.twiml import Audio, Pause, Play, Redirect, Response, Say
from fsconf.twiml.errors import SCHEMA_VALIDATION

logger = logging.getLogger(__name__)

SILENCE: Final = "silence_stream://-1"
BREAK_RETRY_SECONDS: Final = 0.2
BREAK_ATTEMPTS: Final = 10


class Session(Protocol):
    """What the audio loop needs from an OutboundSession."""

    hungup: bool

    @property
    def uuid(self) -> str | None: ...

    def execute(
        self, app: str, arg: str | None = None, *, timeout: float | None = None
    ) -> Event: ...

    def api(self, text: str, *, check: bool = True, timeout: float | None = None) -> object: ...


#: ``fetch(url, method)`` -> the restricted document or audio, or TwimlError.
AudioFetch = Callable[[str, str], "Response | Audio"]


@dataclass(frozen=True, slots=True)
class AudioConfig:
    default_hold: str = "local_stream://moh"
    tts: TtsConfig = field(default_factory=TtsConfig)
    max_idle_documents: int = 50


def run_execute(session: Session, step: Execute, stopping: Callable[[], bool]) -> str | None:
    """Run ``step`` ``loops`` times (0: until stopped or hung up); last response.

    A playback that answers ``FILE NOT FOUND`` is not repeated.
    """
    response: str | None = None
    done = 0
    while (step.loops == 0 or done < step.loops) and not stopping() and not session.hungup:
        event = session.execute(step.app, step.arg)
        response = event.get("Application-Response")
        if response == FILE_NOT_FOUND:
            break
        done += 1
    return response


class AudioLoop:
    """Play one wait/hold/announce source on a channel until :meth:`stop`."""

    def __init__(
        self,
        session: Session,
        url: str | None,
        method: str,
        *,
        fetch: AudioFetch,
        config: AudioConfig | None = None,
        on_error: Callable[[TwimlError], None] | None = None,
        log_name: str = "",
    ) -> None:
        self.session = session
        self.url = url
        self.method = method
        self.config = config or AudioConfig()
        self.error: TwimlError | None = None
        self.ready = gevent.event.Event()
        self._fetch = fetch
        self._on_error = on_error
        self._log_name = log_name
        self._stopping = False
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> AudioLoop:
        self._greenlet = gevent.spawn(self._run)
        return self

    def wait_ready(self, timeout: float | None = None) -> TwimlError | None:
        """Wait for the first fetch (or the first media); its error, if any."""
        self.ready.wait(timeout)
        return self.error

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def stop(self) -> None:
        """Stop the audio; return once nothing of ours runs on the channel."""
        self._stopping = True
        greenlet = self._greenlet
        uuid = self.session.uuid
        for _ in range(BREAK_ATTEMPTS):
            if greenlet is None or greenlet.dead or self.session.hungup or uuid is None:
                break
            try:
                self.session.api(commands.uuid_break_cmd(uuid), check=False)
            except EslError as error:
                logger.info("%s: uuid_break: %s", self._log_name, error)
                break
            greenlet.join(BREAK_RETRY_SECONDS)
        if greenlet is not None and not greenlet.dead:
            greenlet.kill(block=True)

    # --- the greenlet -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._play_source()
        except EslDisconnected:
            logger.debug("%s: audio ended: the call went away", self._log_name)
        except EslError as error:
            logger.warning("%s: audio failed: %s", self._log_name, error)
        finally:
            self.ready.set()

    def _play_source(self) -> None:
        if self.url is None:
            self._loop_media(self.config.default_hold)
            return
        if self.url == "":
            self._loop_media(SILENCE)
            return
        document = self._fetch_first()
        if document is None:
            return
        if isinstance(document, Audio):
            self._loop_media(commands.http_media(document.url))
            return
        self._play_documents(document)

    def _fetch_first(self) -> Response | Audio | None:
        assert self.url is not None
        try:
            document = self._fetch(self.url, self.method)
        except TwimlError as error:
            self._report(error)
            return None
        self.ready.set()
        return document

    def _report(self, error: TwimlError) -> None:
        self.error = error
        self.ready.set()
        logger.warning(
            "%s: wait/hold audio %s failed: %s", self._log_name, log_url(self.url), error
        )
        if self._on_error is not None:
            self._on_error(error)

    def _loop_media(self, media: str) -> None:
        self.ready.set()
        run_execute(self.session, Execute("playback", media, 0), self._stopped)

    def _stopped(self) -> bool:
        return self._stopping

    def _play_documents(self, document: Response) -> None:
        idle = 1
        while not self._stopping and not self.session.hungup:
            played, redirect = self._play_once(document)
            if redirect is None:
                if not played:
                    self._loop_media(SILENCE)
                    return
                continue
            idle = 0 if played else idle + 1
            if idle >= self.config.max_idle_documents:
                self._report(TwimlError(14106, "wait document Redirect loop", url=redirect.url))
                self._loop_media(SILENCE)
                return
            try:
                fetched = self._fetch(redirect.url, str(redirect.method))
            except TwimlError as error:
                self._report(error)
                self._loop_media(SILENCE)
                return
            if isinstance(fetched, Audio):
                self._loop_media(commands.http_media(fetched.url))
                return
            document = fetched

    def _play_once(self, document: Response) -> tuple[bool, Redirect | None]:
        """Run the document once: (did anything play, the Redirect that ended it)."""
        played = False
        for verb in document.verbs:
            if self._stopping or self.session.hungup:
                return played, None
            if isinstance(verb, Redirect):
                return played, verb
            if not isinstance(verb, Say | Play | Pause):
                # parse_twiml(restricted=True) refuses the others; never trust it blindly.
                self._report(TwimlError(SCHEMA_VALIDATION, "verb not allowed", line=verb.line))
                continue
            for step in media_steps(self.config.tts, verb):
                run_execute(self.session, step, self._stopped)
                played = True
        return played, None
