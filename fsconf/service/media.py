"""HoldUrl and AnnounceUrl -> the one media string FreeSWITCH plays.

Theory of operation
-------------------
Twilio lets a HoldUrl or an AnnounceUrl answer with an MP3/WAV **or** a TwiML
document of ``<Play>``, ``<Say>``, ``<Pause>`` and ``<Redirect>`` (Twilio's own
default hold music is such a twimlet). mod_conference plays a *file* to a held
member and into the room, so the document is turned, here, into one file
string that FreeSWITCH can open:

* audio -> ``http_cache://<url>`` (:func:`~fsconf.esl.commands.http_media`);
* TwiML -> ``file_string://<part>!<part>...``: ``<Play>`` an ``http_cache://``
  part per loop, ``<Say>`` a ``tts://<engine>|<voice>|<text>`` part per loop
  (voice and language through :mod:`fsconf.calls.voices`), ``<Pause>`` a
  ``silence_stream://<ms>`` part, ``<Redirect>`` the next document (fetched,
  signed, at most :attr:`MediaLimits.max_documents`; a Redirect back to a
  document already seen closes the cycle: that is how a twimlet loops);
* a document that plays nothing -> silence.

:func:`resolve_media` is pure over an injected ``fetch``: it never opens a
socket. Every part is built by a validated builder of
:mod:`fsconf.esl.commands`, so no TwiML text reaches FreeSWITCH unchecked:
``<Say>`` text goes through ``playlist_tts_text`` (no ``$ { } | \\ ! '``, no
control characters), and URLs through ``quote_url`` with ``!`` encoded.

**Hold never ends; an announcement plays once.** FreeSWITCH cannot loop a
member's file, and a held member whose file ends hears the room again (B10),
so the hold playlist is the document's cycle repeated until the budget
(:data:`~fsconf.esl.commands.PLAYLIST_MAX_PARTS` parts,
:attr:`MediaLimits.max_chars` characters: hours of music for a twimlet, minutes
for a short ``<Say>``), then ``silence_stream://-1``, which never ends. An
endless verb (``loop="0"``) is unrolled the same way; in an announcement it is
unrolled to the budget and then the announcement ends.

**Failure.** :func:`resolve_media` raises :class:`~fsconf.errors.TwimlError`
when the *first* fetch fails or the document is invalid. The shell
(:class:`MediaResolver`) then holds with the configured playable hold media
(``EngineConfig.hold_media``, a looping tone by default) -- never the room --
or reports announcement-fail with ``ReasonAnnouncementFailed``. A later
Redirect that fails ends the cycle with what was collected. A 2xx answer that
is neither TwiML nor a listed audio type (S3 serves MP3s as
``binary/octet-stream``) is handed to FreeSWITCH as audio: mod_http_cache then
decides, as it did before TwiML was understood.

What FreeSWITCH's source says (signalwire/freeswitch, master of 2026-08-21,
``src/mod/applications/mod_conference`` unless named)
------------------------------------------------------------------------------
* ``conference <room> hold <id> [<file>]``: conference_api.c:404-455
  (``conference_api_sub_hold``) sets MFLAG_HOLD, hard-mutes the member's
  session and calls ``conference_member_play_file(member, data, 0,
  SWITCH_FALSE)`` once (line 432): ``mux`` false means the file *replaces*
  what the member hears (conference_member.c:621-627). There is no loop: a
  member's file node is done at the first short read
  (conference_member.c:605-607) and removed (conference_member.c:565-577),
  after which the member hears the mix again -- B10's "with no file or an
  unplayable one the member still hears the room". ``unhold`` stops the
  member's files (conference_api.c:362-368, ``FILE_STOP_ALL``).
* ``conference <room> play <file> [async|<id> [nomux]]``:
  conference_api.c:2799-2870; a room play is ``conference_file_play``, which
  reads ``{loops=N|inf}`` (conference_file.c:293-311, looped in
  mod_conference.c:508-520) -- member plays and holds do not.
* The api line is split on blanks with ``'...'`` grouping and the quotes
  stripped (conference_api.c:217 -> switch_utils.c:2814-2870
  ``separate_string_blank_delim`` and 2705-2747 ``cleanup_separated_string``;
  ``\\`` escapes). Hold's file is one word (``argv[argn + 2]``,
  conference_api.c:4206-4254), so a file with spaces must be quoted.
* A member file is expanded for ``${vars}`` (conference_member.c:1449), a
  ``say:`` prefix speaks with the *profile's* TTS (conference_member.c:1454,
  conference_file.c:194), and a name that is not a path (no leading ``/``, no
  ``://``, switch_utils.h:1266-1288 ``switch_is_file_path``) is SPOKEN when the
  profile has no sound-prefix (conference_member.c:1460-1468). fsconf's profile
  keeps TTS out (B4), so ``say:`` is not used; every part is explicit media.
* ``file_string://a!b!c`` (mod_dptools.c:4937-5214): split on ``!`` into at
  most ``argv[128]`` (lines 4947, 5131); parts play in order; a part that
  cannot be opened is skipped (``goto top``, lines 5020-5030), and the open
  fails only when none can be opened; non-path parts get ``sound_prefix``
  (lines 4987-4995); the first part is preceded by 250 ms of silence (lines
  5096-5099). It does not loop.
* ``tts://<engine>|<voice>|<text>`` (mod_dptools.c:5347-5401 ``tts_file_open``,
  registered as the ``tts`` file format at 6592-6598): split on ``|`` into 3,
  any engine loaded (flite), ends when the engine is done (5408-5438).
* ``silence_stream://<ms>[,<factor>]`` (src/mod/formats/mod_tone_stream/
  mod_tone_stream.c:44-79, 86-105): ``-1`` never ends, ``0`` is refused.
  ``tone_stream://...;loops=-1`` loops forever (mod_tone_stream.c:141-146,
  libteletone_generate.c:374, 454-457): the default hold media.
* ``http_cache://<url>``: mod_http_cache (captures B17); a scheme is what
  precedes ``://`` (src/switch_core_file.c:316-322), so
  ``http_cache://http://...`` nests.

Request parameters. Twilio does not document what it sends to a HoldUrl or
AnnounceUrl; fsconf sends ``AccountSid``, ``ConferenceSid`` and, for a
participant, ``CallSid``, signed with the account's auth token like every
Twilio request (:class:`~fsconf.calls.fetch.Fetcher`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from fsconf.calls.fetch import Fetcher
from fsconf.calls.params import Pairs
from fsconf.calls.voices import TtsConfig, select_voice
from fsconf.errors import EslArgumentError, TwimlError
from fsconf.esl import commands
from fsconf.redact import log_url
from fsconf.store import models
from fsconf.store.db import transaction
from fsconf.twiml import Audio, Pause, Play, Redirect, Response, Say
from fsconf.twiml.errors import SCHEMA_VALIDATION

logger = logging.getLogger(__name__)

#: ``fetch(url, method)`` -> the restricted document or audio, or TwimlError.
MediaFetch = Callable[[str, str], "Response | Audio"]

ANNOUNCE_SILENCE_MS: Final = 100
"""An announcement that plays nothing still plays (and ends) through FreeSWITCH,
so announcement-end comes from play-file-done like any other."""

INVALID_CONTENT_TYPE: Final = 12300


@dataclass(frozen=True, slots=True)
class MediaLimits:
    max_documents: int = 10
    max_parts: int = commands.PLAYLIST_MAX_PARTS
    max_chars: int = commands.PLAYLIST_MAX_CHARS


@dataclass(frozen=True, slots=True)
class _Item:
    """One playlist part, played ``times`` times (0: endless)."""

    part: str
    times: int


def resolve_media(
    url: str,
    method: str,
    *,
    fetch: MediaFetch,
    tts: TtsConfig,
    loop: bool,
    limits: MediaLimits | None = None,
) -> str:
    """What FreeSWITCH plays for ``url``: endless when ``loop`` (hold), once otherwise.

    Raises :class:`TwimlError` when the first fetch fails or the document is
    invalid, and :class:`~fsconf.errors.EslArgumentError` if a part cannot be
    made safe (both mean: use the fallback).
    """
    limits = limits or MediaLimits()
    answer = fetch(url, method)
    if isinstance(answer, Audio):
        items = [_Item(commands.http_part(answer.url), 1)]
    else:
        items = _cycle(answer, fetch, tts, limits)
    if loop:
        return _endless(items, limits)
    return _once(items, limits)


def _cycle(
    document: Response, fetch: MediaFetch, tts: TtsConfig, limits: MediaLimits
) -> list[_Item]:
    """The parts of one pass over the document chain (Redirects followed)."""
    items: list[_Item] = []
    seen = {document.url}
    fetched = 1
    current: Response | None = document
    while current is not None:
        redirect: Redirect | None = None
        for verb in current.verbs:
            if isinstance(verb, Redirect):
                redirect = verb
                break
            items.extend(_items(verb, tts))
            if items and items[-1].times == 0:
                return items  # nothing after an endless verb is ever reached
        current = None
        if redirect is None or redirect.url in seen:
            break  # the end of the document, or a Redirect back: the cycle is closed
        if fetched >= limits.max_documents:
            logger.warning("media %s: more than %d documents", log_url(document.url), fetched)
            break
        seen.add(redirect.url)
        fetched += 1
        try:
            answer = fetch(redirect.url, str(redirect.method))
        except TwimlError as error:
            logger.warning(
                "media %s: Redirect %s failed: %s",
                log_url(document.url),
                log_url(redirect.url),
                error,
            )
            break
        if isinstance(answer, Audio):
            items.append(_Item(commands.http_part(answer.url), 1))
            break
        current = answer
    return items


def _items(verb: object, tts: TtsConfig) -> list[_Item]:
    if isinstance(verb, Play):
        # digits (DTMF) cannot travel in a file: a Play with only digits plays nothing
        return [_Item(commands.http_part(verb.url), verb.loop)] if verb.url else []
    if isinstance(verb, Say):
        chosen = select_voice(tts, verb.voice, verb.language)
        text = commands.playlist_tts_text(verb.text)
        return [_Item(commands.tts_media(chosen.engine, chosen.voice, text), verb.loop)]
    if isinstance(verb, Pause):
        return [_Item(commands.silence_media(verb.length * 1000), 1)] if verb.length else []
    # parse_twiml(restricted=True) refuses every other verb; never trust it blindly.
    line = getattr(verb, "line", None)
    raise TwimlError(SCHEMA_VALIDATION, f"{type(verb).__name__} is not allowed here", line=line)


def _expanded(items: list[_Item]) -> Iterator[str]:
    """The parts in play order; an endless item repeats forever (the caller cuts)."""
    for item in items:
        if item.times == 0:
            while True:
                yield item.part
        yield from [item.part] * item.times


def _take(parts: Iterator[str], max_parts: int, max_chars: int) -> list[str]:
    """Parts while ``file_string://a!b...`` stays within both budgets."""
    taken: list[str] = []
    size = len("file_string://") - 1
    for part in parts:
        if len(taken) >= max_parts or size + 1 + len(part) > max_chars:
            break
        taken.append(part)
        size += 1 + len(part)
    return taken


def _once(items: list[_Item], limits: MediaLimits) -> str:
    parts = _take(_expanded(items), limits.max_parts, limits.max_chars)
    if not parts:
        return commands.silence_media(ANNOUNCE_SILENCE_MS)
    if len(parts) == 1 and not parts[0].startswith("tts://"):
        return parts[0]  # one plain media (an MP3 announcement): as before TwiML
    return commands.playlist_media(parts)


def _repeated(items: list[_Item]) -> Iterator[str]:
    while True:
        yield from _expanded(items)


def _endless(items: list[_Item], limits: MediaLimits) -> str:
    tail = commands.SILENCE_FOREVER
    if not items:
        return tail
    parts = _take(_repeated(items), limits.max_parts - 1, limits.max_chars - len(tail) - 1)
    return commands.playlist_media([*parts, tail])


# --- the shell: fetch signed, fall back -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Whose media it is: the fetch's parameters and the log lines."""

    account_sid: str
    conference_sid: str
    call_sid: str | None = None

    def params(self) -> Pairs:
        pairs = [("AccountSid", self.account_sid), ("ConferenceSid", self.conference_sid)]
        if self.call_sid is not None:
            pairs.append(("CallSid", self.call_sid))
        return tuple(pairs)


@dataclass
class MediaResolver:
    """Resolve HoldUrl/AnnounceUrl with signed fetches; what to do on failure."""

    sessions: sessionmaker[Session]
    hold_fallback: str
    fetcher: Fetcher = field(default_factory=Fetcher)
    tts: TtsConfig = field(default_factory=TtsConfig)
    limits: MediaLimits = field(default_factory=MediaLimits)

    def hold(self, target: Target, url: str, method: str) -> str:
        """The hold media: never fails (the configured hold media instead)."""
        try:
            return self._resolve(target, url, method, loop=True)
        except (TwimlError, EslArgumentError) as error:
            logger.warning(
                "%s %s: HoldUrl %s failed (%s): holding with the default hold media",
                target.conference_sid,
                target.call_sid,
                log_url(url),
                error,
            )
            return self.hold_fallback

    def announcement(self, target: Target, url: str, method: str) -> str | TwimlError:
        """The announcement media, or why it cannot be played."""
        try:
            return self._resolve(target, url, method, loop=False)
        except TwimlError as error:
            logger.warning(
                "%s: AnnounceUrl %s failed: %s", target.conference_sid, log_url(url), error
            )
            return error
        except EslArgumentError as error:
            logger.warning(
                "%s: AnnounceUrl %s unsafe: %s", target.conference_sid, log_url(url), error
            )
            return TwimlError(SCHEMA_VALIDATION, f"unplayable announcement: {error}", url=url)

    def _resolve(self, target: Target, url: str, method: str, *, loop: bool) -> str:
        token = self._auth_token(target.account_sid)
        params = target.params()

        def fetch(address: str, verb: str) -> Response | Audio:
            try:
                return self.fetcher.fetch(
                    address, verb, params, token, restricted=True, log_name=target.conference_sid
                )
            except TwimlError as error:
                if error.code == INVALID_CONTENT_TYPE:
                    # 2xx, neither TwiML nor a listed audio type: FreeSWITCH decides.
                    return Audio(url=address, media_type="application/octet-stream")
                raise

        return resolve_media(url, method, fetch=fetch, tts=self.tts, loop=loop, limits=self.limits)

    def _auth_token(self, account_sid: str) -> str:
        with transaction(self.sessions) as session:
            account = session.get(models.Account, account_sid)
            if account is None:
                raise TwimlError(SCHEMA_VALIDATION, f"unknown account {account_sid}")
            return account.auth_token
