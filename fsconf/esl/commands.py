"""Pure builders for every ESL command fsconf sends.

Theory of operation
-------------------
This module is the only place a FreeSWITCH command line is written, and it is
the security boundary: every argument is validated before anything is built,
and a bad one raises :class:`EslArgumentError` so nothing is ever sent.

* No argument may contain CR, LF or NUL (they would end the command and start
  another one).
* Conference rooms are our ConferenceSids (``CF`` + 32 hex), never a friendly
  name: user text never reaches a command line.
* Channel UUIDs, member ids, variable names, flags, profiles and hangup causes
  come from closed alphabets; media and URLs are re-encoded so that none of
  FreeSWITCH's metacharacters (space, ``{}``, ``$``, ``'``, ``"``, ``|``, ``\\``,
  ``^``) survive in them. ``$`` matters because FreeSWITCH expands ``${var}``
  in application data.
* Every request carries our own correlation id: ``Job-UUID`` on bgapi,
  ``Event-UUID`` on sendmsg, ``origination_uuid`` on originate.
* sendmsg always carries ``event-lock: true``: without it a message sent while
  a blocking application runs is executed *nested inside* it (captures, B12).

Two kinds of result: ``*_cmd`` functions return the *text* of an api command
(``conference CF... mute 7 quiet``), to be wrapped by :func:`api` or
:func:`bgapi`; the others return the bytes that go on the wire.

The FreeSWITCH syntax of each command is in its docstring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import quote, urlsplit

from fsconf.errors import EslArgumentError

# --- validators --------------------------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ROOM = re.compile(r"CF[0-9a-f]{32}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VAR_VALUE = re.compile(r"[A-Za-z0-9_+.:@/=*#%()\-]{0,512}")
_PROFILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_JOB_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_CAUSE = re.compile(r"[A-Z_]{1,40}")
_ENDPOINT = re.compile(r"[A-Za-z0-9_]+/[A-Za-z0-9_.+@:/=-]{1,200}")
_MEDIA = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!&()*+;=%,]{1,2048}")
_EVENT_NAME = re.compile(r"[A-Z_]{2,40}|ALL")
_SUBCLASS = re.compile(r"[a-z_]+::[a-z_]+")
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\]")
_TTS = re.compile(r"[^\x00-\x1f\x7f${}|\\]{1,4000}")
_FORBIDDEN = ("\r", "\n", "\x00")
_DOLLARS = re.compile(r"\$(\d[\d,.]*)")

CONFERENCE_FLAGS = frozenset(
    {
        "mute",
        "deaf",
        "endconf",
        "mandatory_member_endconf",
        "moderator",
        "nomoh",
        "ghost",
        "join-only",
        "vmute",
        "mintwo",
        "dist-dtmf",
        "joinonly",
    }
)
"""Member flags fsconf may put in ``+flags{...}``."""

RecordingAction = Literal["pause", "resume", "stop"]
RelateAction = Literal["nospeak", "nohear", "clear"]
EventFormat = Literal["plain", "json"]


def _check(name: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        raise EslArgumentError(name, value, "must be a string")
    if any(c in value for c in _FORBIDDEN):
        raise EslArgumentError(name, value, "contains CR, LF or NUL")
    if not pattern.fullmatch(value):
        raise EslArgumentError(name, value, f"must be {what}")
    return value


def check_uuid(value: str, name: str = "uuid") -> str:
    return _check(name, value, _UUID, "a channel UUID")


def check_room(value: str) -> str:
    """A FreeSWITCH room name: always one of our ConferenceSids."""
    return _check("room", value, _ROOM, "a ConferenceSid (CF + 32 lowercase hex)")


def check_member_id(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise EslArgumentError("member_id", value, "must be a positive integer")
    return str(value)


def check_var(name: str, value: str) -> tuple[str, str]:
    _check("variable name", name, _VAR_NAME, "a variable name ([A-Za-z_][A-Za-z0-9_]*)")
    _check(name, value, _VAR_VALUE, "a plain value (no spaces, braces, quotes, $ or commas)")
    return name, value


def check_media(value: str) -> str:
    """A file, stream or URL for playback/record: no metacharacters."""
    return _check("media", value, _MEDIA, "a media path or encoded URL without spaces or $")


def check_profile(value: str) -> str:
    return _check("profile", value, _PROFILE, "a profile name")


def _check_job_id(value: str) -> str:
    return _check("job_uuid", value, _JOB_ID, "a job id")


def quote_url(url: str) -> str:
    """Re-encode an http(s) URL so it is safe as a FreeSWITCH file argument.

    Percent-encodes everything FreeSWITCH could read as syntax; keeps existing
    escapes, so quoting twice changes nothing.
    """
    if any(c in url for c in _FORBIDDEN):
        raise EslArgumentError("url", url, "contains CR, LF or NUL")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise EslArgumentError("url", url, "is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EslArgumentError("url", url, "must be an absolute http(s) URL")
    return quote(url, safe="/:?#[]@!&()*+;=%-._~")


def http_media(url: str) -> str:
    """``http_cache://<url>``: play through mod_http_cache (captures, B17)."""
    return check_media("http_cache://" + quote_url(url))


def sanitize_tts_text(text: str) -> str:
    """Make user text (``<Say>``) safe for ``speak``/``say``.

    Control characters become spaces; FreeSWITCH metacharacters (``$`` would
    expand variables, ``|`` separates speak's fields, ``{}`` start variable
    lists) are spelled or dropped. The words a caller hears stay the same.
    """
    text = _DOLLARS.sub(r"\1 dollars", text).replace("$", " dollars ")
    out = []
    for char in text:
        if char in "{}|\\" or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(" ")
        else:
            out.append(char)
    cleaned = " ".join("".join(out).split())
    return cleaned[:4000] or " "


def _check_tts(text: str) -> str:
    return _check("text", text, _TTS, "TTS text (use sanitize_tts_text)")


def _vars_prefix(variables: Mapping[str, str]) -> str:
    if not variables:
        return ""
    pairs = [f"{k}={v}" for k, v in (check_var(k, v) for k, v in variables.items())]
    return "{" + ",".join(pairs) + "}"


# --- wire frames -----------------------------------------------------------------


def _wire(line: str, headers: Iterable[tuple[str, str]] = (), body: str | None = None) -> bytes:
    if any(c in line for c in _FORBIDDEN):
        raise EslArgumentError("command", line, "contains CR, LF or NUL")
    text = line + "\n"
    for name, value in headers:
        _check("header name", name, _HEADER_NAME, "a header name")
        if any(c in value for c in _FORBIDDEN):
            raise EslArgumentError(name, value, "contains CR, LF or NUL")
        text += f"{name}: {value}\n"
    if body is None:
        return (text + "\n").encode()
    payload = body.encode()
    return (text + f"content-length: {len(payload)}\n\n").encode() + payload


def auth(password: str) -> bytes:
    """``auth <password>``"""
    # The error never carries the password itself: it ends up in logs.
    if not password or " " in password or any(c in password for c in _FORBIDDEN):
        raise EslArgumentError("password", "***", "must be non-empty, no spaces, CR, LF or NUL")
    return _wire(f"auth {password}")


def api(command: str) -> bytes:
    """``api <command>``: blocking; the reply is an api/response."""
    return _wire(f"api {command}")


def bgapi(command: str, job_uuid: str) -> bytes:
    """``bgapi <command>`` with ``Job-UUID: <ours>``; result in BACKGROUND_JOB."""
    return _wire(f"bgapi {command}", [("Job-UUID", _check_job_id(job_uuid))])


def event(
    names: Iterable[str], fmt: EventFormat = "plain", subclasses: Iterable[str] = ()
) -> bytes:
    """``event <plain|json> <NAME ...> [CUSTOM <subclass ...>]``

    CUSTOM and its subclasses always go last: every word after CUSTOM is read
    as a subclass name, so ``CUSTOM a::b BACKGROUND_JOB`` silently subscribes to
    no BACKGROUND_JOB at all (captures, B1).
    """
    if fmt not in ("plain", "json"):
        raise EslArgumentError("format", fmt, "must be plain or json")
    words = [_check("event", n, _EVENT_NAME, "an event name") for n in names if n != "CUSTOM"]
    subs = [_check("subclass", s, _SUBCLASS, "an event subclass") for s in subclasses]
    if subs:
        words += ["CUSTOM", *subs]
    if not words:
        raise EslArgumentError("names", names, "subscribe to at least one event")
    return _wire(f"event {fmt} {' '.join(words)}")


def filter_add(header: str, value: str) -> bytes:
    """``filter <header> <value>``

    Beware: ``filter Unique-ID x`` also hides BACKGROUND_JOB (captures, B2.12).
    """
    _check("header", header, _HEADER_NAME, "a header name")
    _check("value", value, _VAR_VALUE, "a plain value")
    return _wire(f"filter {header} {value}")


def filter_delete(header: str, value: str) -> bytes:
    """``filter delete <header> <value>``"""
    _check("header", header, _HEADER_NAME, "a header name")
    _check("value", value, _VAR_VALUE, "a plain value")
    return _wire(f"filter delete {header} {value}")


def myevents(uuid: str | None = None) -> bytes:
    """``myevents [<uuid>]``: only this channel's events (outbound socket)."""
    return _wire("myevents" if uuid is None else f"myevents {check_uuid(uuid)}")


def linger(seconds: int | None = None) -> bytes:
    """``linger [<seconds>]``: keep the socket after hangup until ``exit``."""
    if seconds is None:
        return _wire("linger")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise EslArgumentError("seconds", seconds, "must be a positive integer")
    return _wire(f"linger {seconds}")


def connect() -> bytes:
    """``connect``: first command on an outbound socket; reply has the channel data."""
    return _wire("connect")


def nixevent(names: Iterable[str]) -> bytes:
    """``nixevent <NAME ...>``"""
    words = [_check("event", n, _EVENT_NAME, "an event name") for n in names]
    return _wire(f"nixevent {' '.join(words)}")


def noevents() -> bytes:
    """``noevents``"""
    return _wire("noevents")


def exit_() -> bytes:
    """``exit``"""
    return _wire("exit")


def sendmsg_execute(
    app: str,
    arg: str | None = None,
    *,
    event_uuid: str,
    uuid: str | None = None,
    event_lock: bool = True,
    loops: int | None = None,
) -> bytes:
    """``sendmsg [<uuid>]`` / ``call-command: execute`` / ``execute-app-name``.

    The argument travels as a ``text/plain`` body with a content-length, so it
    is taken literally. ``Event-UUID`` comes back as ``Application-UUID`` on
    CHANNEL_EXECUTE(_COMPLETE): that is how completion is matched.
    """
    _check("app", app, _VAR_NAME, "an application name")
    headers = [
        ("call-command", "execute"),
        ("execute-app-name", app),
        ("Event-UUID", check_uuid(event_uuid, "event_uuid")),
    ]
    if event_lock:
        headers.append(("event-lock", "true"))
    if loops is not None:
        if isinstance(loops, bool) or not isinstance(loops, int) or not -1 <= loops <= 10000:
            raise EslArgumentError("loops", loops, "must be -1..10000")
        headers.append(("loops", str(loops)))
    line = "sendmsg" if uuid is None else f"sendmsg {check_uuid(uuid)}"
    if arg is None:
        return _wire(line, headers)
    if any(c in arg for c in _FORBIDDEN):
        raise EslArgumentError("arg", arg, "contains CR, LF or NUL")
    headers.append(("content-type", "text/plain"))
    return _wire(line, headers, body=arg)


def sendmsg_hangup(cause: str = "NORMAL_CLEARING", *, uuid: str | None = None) -> bytes:
    """``sendmsg`` / ``call-command: hangup`` / ``hangup-cause: <CAUSE>``"""
    line = "sendmsg" if uuid is None else f"sendmsg {check_uuid(uuid)}"
    return _wire(
        line,
        [
            ("call-command", "hangup"),
            ("hangup-cause", _check("cause", cause, _CAUSE, "a hangup cause")),
        ],
    )


# --- application arguments ---------------------------------------------------------


def multiset_arg(variables: Mapping[str, str]) -> str:
    """The argument of the ``multiset`` app: ``^^<sep>a=1<sep>b=2``.

    One application sets every variable, so the join path pays one round trip
    instead of one per variable (DESIGN, "The join path is the hot path").
    """
    if not variables:
        raise EslArgumentError("variables", variables, "must not be empty")
    pairs = [f"{k}={v}" for k, v in (check_var(k, v) for k, v in variables.items())]
    return "^^|" + "|".join(pairs)


def set_arg(name: str, value: str) -> str:
    """The argument of the ``set`` app: ``name=value``."""
    check_var(name, value)
    return f"{name}={value}"


def conference_app_arg(room: str, profile: str = "fsconf", flags: Iterable[str] = ()) -> str:
    """The argument of the ``conference`` app: ``<room>@<profile>[+flags{a|b}]``."""
    flag_list = sorted(set(flags))
    for flag in flag_list:
        if flag not in CONFERENCE_FLAGS:
            raise EslArgumentError("flag", flag, "not a known member flag")
    text = f"{check_room(room)}@{check_profile(profile)}"
    if flag_list:
        text += "+flags{" + "|".join(flag_list) + "}"
    return text


def speak_arg(engine: str, voice: str, text: str) -> str:
    """The argument of the ``speak`` app: ``<engine>|<voice>|<text>``."""
    _check("engine", engine, _PROFILE, "a TTS engine name")
    _check("voice", voice, _PROFILE, "a TTS voice name")
    return f"{engine}|{voice}|{_check_tts(text)}"


def jitterbuffer_arg(size: Literal["off", "small", "medium", "large"]) -> str:
    """The argument of the ``jitterbuffer`` app: ``<msec>`` or ``stop``."""
    table = {"off": "stop", "small": "20", "medium": "40", "large": "60"}
    if size not in table:
        raise EslArgumentError("jitterBufferSize", size, "must be off|small|medium|large")
    return table[size]


# --- api command texts -----------------------------------------------------------------


def originate_cmd(
    *,
    origination_uuid: str,
    endpoint: str,
    variables: Mapping[str, str] | None = None,
    app: str = "park",
    app_arg: str | None = None,
    timeout: int | None = None,
) -> str:
    """``originate {origination_uuid=<ours>,...}<endpoint> &<app>[(<arg>)]``

    ``originate`` reads ``&app(args)`` up to the first ``)`` (captures,
    surprise 19), so an argument with ``)`` is refused.
    """
    leg = _originate_leg(origination_uuid, endpoint, variables, timeout)
    _check("app", app, _VAR_NAME, "an application name")
    target = f"&{app}"
    if app_arg is not None:
        if ")" in app_arg or any(c in app_arg for c in _FORBIDDEN) or " " in app_arg:
            raise EslArgumentError("app_arg", app_arg, "must have no ')' or spaces")
        target += f"({app_arg})"
    return f"originate {leg} {target}"


def _originate_leg(
    origination_uuid: str,
    endpoint: str,
    variables: Mapping[str, str] | None,
    timeout: int | None,
) -> str:
    """``{origination_uuid=<ours>,...}<endpoint>``: the first word of originate."""
    merged = {"origination_uuid": check_uuid(origination_uuid, "origination_uuid")}
    for reserved in ("origination_uuid", "originate_timeout"):
        # Our correlation id (and the timeout argument) cannot be overridden
        # through the variables.
        if variables and reserved in variables:
            raise EslArgumentError(reserved, variables[reserved], "set by its own argument")
    merged.update(variables or {})
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 600:
            raise EslArgumentError("timeout", timeout, "must be 1..600 seconds")
        merged["originate_timeout"] = str(timeout)
    _check("endpoint", endpoint, _ENDPOINT, "a dial string like sofia/gateway/gw/+1555")
    if ":_:" in endpoint:
        # FreeSWITCH's separator for dialling several legs at once.
        raise EslArgumentError("endpoint", endpoint, "must dial exactly one leg (no :_:)")
    return f"{_vars_prefix(merged)}{endpoint}"


def socket_app_arg(host: str, port: int) -> str:
    """The argument of the ``socket`` app: ``<host>:<port> async full``.

    ``async full`` is what fsconf's outbound server expects of every call
    (DESIGN, "Data flow" 2): events as they happen, and every api command.
    """
    _check("host", host, _HOST, "an IP address or host name")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise EslArgumentError("port", port, "must be 1..65535")
    return f"{host}:{port} async full"


def originate_socket_cmd(
    *,
    origination_uuid: str,
    endpoint: str,
    host: str,
    port: int,
    variables: Mapping[str, str] | None = None,
    timeout: int | None = None,
) -> str:
    """``originate {origination_uuid=<ours>,...}<endpoint> '&socket(<host>:<port> async full)'``

    ``originate`` splits its line on blanks outside single quotes and strips the
    quotes (``switch_separate_string`` in switch_utils.c), so the quoted target
    reaches it as one word with its spaces; it then cuts ``&app(args)`` at the
    first ``)`` (surprise 19), which a validated host and port never contain.
    On answer the leg runs ``socket``, which hands it to fsconf's outbound
    server like any inbound call.
    """
    leg = _originate_leg(origination_uuid, endpoint, variables, timeout)
    return f"originate {leg} '&socket({socket_app_arg(host, port)})'"


def uuid_kill_cmd(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    """``uuid_kill <uuid> [<cause>]``"""
    return f"uuid_kill {check_uuid(uuid)} {_check('cause', cause, _CAUSE, 'a hangup cause')}"


def uuid_break_cmd(uuid: str, *, all_: bool = False) -> str:
    """``uuid_break <uuid> [all]``: ``all`` also DISCARDS queued messages (B12)."""
    return f"uuid_break {check_uuid(uuid)}" + (" all" if all_ else "")


def uuid_setvar_cmd(uuid: str, name: str, value: str) -> str:
    """``uuid_setvar <uuid> <name> <value>``"""
    check_var(name, value)
    return f"uuid_setvar {check_uuid(uuid)} {name} {value}"


def uuid_transfer_cmd(
    uuid: str, extension: str, dialplan: str = "XML", context: str = "default"
) -> str:
    """``uuid_transfer <uuid> <extension> <dialplan> <context>``"""
    for name, value in (("extension", extension), ("dialplan", dialplan), ("context", context)):
        _check(name, value, _PROFILE, "a plain dialplan word")
    return f"uuid_transfer {check_uuid(uuid)} {extension} {dialplan} {context}"


def uuid_exists_cmd(uuid: str) -> str:
    """``uuid_exists <uuid>`` -> ``true``/``false``"""
    return f"uuid_exists {check_uuid(uuid)}"


def uuid_getvar_cmd(uuid: str, name: str) -> str:
    """``uuid_getvar <uuid> <name>`` -> value or ``_undef_``"""
    _check("variable name", name, _VAR_NAME, "a variable name")
    return f"uuid_getvar {check_uuid(uuid)} {name}"


def show_channels_cmd() -> str:
    """``show channels as json``"""
    return "show channels as json"


def _conf(room: str, *words: str) -> str:
    return " ".join(("conference", check_room(room), *words))


def conference_list_cmd(room: str | None = None) -> str:
    """``conference [<room>] list``"""
    return "conference list" if room is None else _conf(room, "list")


def conference_json_list_cmd(room: str | None = None) -> str:
    """``conference [<room>] json_list``: members include a ``recording_node`` (B15)."""
    return "conference json_list" if room is None else _conf(room, "json_list")


def conference_count_cmd(room: str) -> str:
    """``conference <room> count`` -> bare number, no ``+OK`` (surprise 3)."""
    return _conf(room, "count")


def conference_mute_cmd(room: str, member_id: int) -> str:
    """``conference <room> mute <id> quiet``: without quiet it speaks "muted" (B4)."""
    return _conf(room, "mute", check_member_id(member_id), "quiet")


def conference_unmute_cmd(room: str, member_id: int) -> str:
    """``conference <room> unmute <id> quiet``"""
    return _conf(room, "unmute", check_member_id(member_id), "quiet")


def conference_deaf_cmd(room: str, member_id: int) -> str:
    """``conference <room> deaf <id>``"""
    return _conf(room, "deaf", check_member_id(member_id))


def conference_undeaf_cmd(room: str, member_id: int) -> str:
    """``conference <room> undeaf <id>``"""
    return _conf(room, "undeaf", check_member_id(member_id))


def conference_hold_cmd(room: str, member_id: int, media: str | None = None) -> str:
    """``conference <room> hold <id> [<file>]``: needs playable audio (B10)."""
    words = ["hold", check_member_id(member_id)]
    if media is not None:
        words.append(check_media(media))
    return _conf(room, *words)


def conference_unhold_cmd(room: str, member_id: int) -> str:
    """``conference <room> unhold <id>``"""
    return _conf(room, "unhold", check_member_id(member_id))


def conference_kick_cmd(room: str, member_id: int) -> str:
    """``conference <room> kick <id>``: ends the app, not the call (B2)."""
    return _conf(room, "kick", check_member_id(member_id))


def conference_kick_all_cmd(room: str) -> str:
    """``conference <room> kick all``: only for ending a whole conference."""
    return _conf(room, "kick", "all")


def conference_hup_cmd(room: str, member_id: int) -> str:
    """``conference <room> hup <id>``"""
    return _conf(room, "hup", check_member_id(member_id))


def conference_play_cmd(
    room: str,
    media: str,
    *,
    member_id: int | None = None,
    variables: Mapping[str, str] | None = None,
    async_: bool = False,
) -> str:
    """``conference <room> play [{vars}]<file> [async|<member_id>]``

    ``{vars}`` come back on play-file-done / play-file-member-done (B5).
    """
    if member_id is not None and async_:
        raise EslArgumentError("async_", async_, "a member play cannot be async")
    words = ["play", _vars_prefix(variables or {}) + check_media(media)]
    if member_id is not None:
        words.append(check_member_id(member_id))
    elif async_:
        words.append("async")
    return _conf(room, *words)


def conference_say_cmd(room: str, text: str) -> str:
    """``conference <room> say <text>`` (fires speak-text, no done event: B8)."""
    return _conf(room, "say", _check_tts(text))


def conference_saymember_cmd(room: str, member_id: int, text: str) -> str:
    """``conference <room> saymember <id> <text>``"""
    return _conf(room, "saymember", check_member_id(member_id), _check_tts(text))


def conference_stop_cmd(room: str, member_id: int | None = None) -> str:
    """``conference <room> stop all [<id>]``"""
    if member_id is None:
        return _conf(room, "stop", "all")
    return _conf(room, "stop", "all", check_member_id(member_id))


def conference_record_cmd(room: str, path: str) -> str:
    """``conference <room> record <path>``"""
    return _conf(room, "record", check_media(path))


def conference_recording_cmd(room: str, action: RecordingAction, path: str) -> str:
    """``conference <room> recording <pause|resume|stop> <path>``

    Only these keywords: anything else is read as ``record <word>`` (surprise 7).
    """
    if action not in ("pause", "resume", "stop"):
        raise EslArgumentError("action", action, "must be pause|resume|stop")
    return _conf(room, "recording", action, check_media(path))


def conference_relate_cmd(
    room: str, member_id: int, other_ids: Iterable[int], action: RelateAction
) -> str:
    """``conference <room> relate <id> <other>[,<other>] <nospeak|nohear|clear>``

    Invisible in every list and event (B16): the caller keeps it in its state.
    """
    if action not in ("nospeak", "nohear", "clear"):
        raise EslArgumentError("action", action, "must be nospeak|nohear|clear")
    others = [check_member_id(i) for i in other_ids]
    if not others:
        raise EslArgumentError("other_ids", other_ids, "must not be empty")
    return _conf(room, "relate", check_member_id(member_id), ",".join(others), action)


def conference_lock_cmd(room: str) -> str:
    """``conference <room> lock`` (inbound channels only: surprise 2)."""
    return _conf(room, "lock")


def conference_unlock_cmd(room: str) -> str:
    """``conference <room> unlock``"""
    return _conf(room, "unlock")


def conference_set_max_members_cmd(room: str, count: int) -> str:
    """``conference <room> set max_members <n>`` -> answers the OLD value (surprise 8)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10000:
        raise EslArgumentError("count", count, "must be 1..10000")
    return _conf(room, "set", "max_members", str(count))


def conference_getvar_cmd(room: str, name: str) -> str:
    """``conference <room> getvar <name>``"""
    _check("variable name", name, _VAR_NAME, "a variable name")
    return _conf(room, "getvar", name)


# --- playlists: what a TwiML HoldUrl/AnnounceUrl becomes (fsconf.service.media) -------------

PLAYLIST_MAX_PARTS = 128
"""mod_dptools' ``file_string`` splits into ``char *argv[128]`` (mod_dptools.c:4948):
more parts would be glued into the last one."""

PLAYLIST_MAX_CHARS = 8192
"""Our cap on a whole playlist (mod_event_socket grows its line buffer to 10 MB,
mod_event_socket.c:1221, so this is ours, not FreeSWITCH's)."""

SILENCE_FOREVER = "silence_stream://-1"
"""mod_tone_stream: a negative length never ends (mod_tone_stream.c:60-65)."""

_TTS_PART = re.compile(r"[^\x00-\x1f\x7f${}|\\!']{1,4000}")
_PLAYLIST_PART = re.compile(r"(?:[a-z_]+://|/)[A-Za-z0-9\-._~:/?#\[\]@&()*+;=%,]{1,2040}")
_TTS_MEDIA = re.compile(
    r"tts://([A-Za-z0-9_][A-Za-z0-9_-]{0,63})\|([A-Za-z0-9_][A-Za-z0-9_-]{0,63})\|(.*)"
)
_PLAYLIST_SCHEMES = ("http_cache://", "silence_stream://", "tone_stream://", "tts://", "/")


def playlist_tts_text(text: str) -> str:
    """:func:`sanitize_tts_text`, then what a playlist part cannot hold.

    ``!`` separates ``file_string`` parts and ``'`` quotes an api argument
    (switch_utils.c ``separate_string_blank_delim``): ``!`` becomes ``.``, which a
    TTS engine reads the same way, and ``'`` is dropped ("don't" -> "dont").
    """
    cleaned = sanitize_tts_text(text).replace("!", ".").replace("'", "")
    return " ".join(cleaned.split()) or "."


def silence_media(milliseconds: int) -> str:
    """``silence_stream://<ms>``; ``-1`` never ends. ``0`` is refused by
    mod_tone_stream (mod_tone_stream.c:53-56), so it is refused here too."""
    if (
        isinstance(milliseconds, bool)
        or not isinstance(milliseconds, int)
        or not (milliseconds == -1 or 1 <= milliseconds <= 86_400_000)
    ):
        raise EslArgumentError("milliseconds", milliseconds, "must be -1 or 1..86400000")
    return f"silence_stream://{milliseconds}"


def tts_media(engine: str, voice: str, text: str) -> str:
    """``tts://<engine>|<voice>|<text>``: mod_dptools' TTS file format
    (``tts_file_open``, mod_dptools.c:5347), playable inside ``file_string``.

    ``text`` must already be clean (:func:`playlist_tts_text`): it may hold
    spaces (the api argument is then quoted), never ``! ' | $ { } \\``.
    """
    _check("engine", engine, _PROFILE, "a TTS engine name")
    _check("voice", voice, _PROFILE, "a TTS voice name")
    _check("text", text, _TTS_PART, "playlist TTS text (use playlist_tts_text)")
    if text != text.strip():
        raise EslArgumentError("text", text, "must not start or end with a space")
    return f"tts://{engine}|{voice}|{text}"


def _check_playlist_part(part: str) -> str:
    if not isinstance(part, str):
        raise EslArgumentError("part", part, "must be a string")
    if any(c in part for c in _FORBIDDEN):
        raise EslArgumentError("part", part, "contains CR, LF or NUL")
    tts = _TTS_MEDIA.fullmatch(part)
    if tts is not None:
        return tts_media(tts.group(1), tts.group(2), tts.group(3))
    if not part.startswith(_PLAYLIST_SCHEMES) or part.startswith("file_string://"):
        # A bare word is SPOKEN by mod_conference (conference_member.c:1460-1468)
        # and prefixed with sound_prefix by file_string: only explicit media.
        raise EslArgumentError(
            "part",
            part,
            "must be http_cache://, silence_stream://, tone_stream://, tts:// or an absolute path",
        )
    return _check("part", part, _PLAYLIST_PART, "a media without ! ' { } $ or spaces")


def playlist_media(parts: Iterable[str]) -> str:
    """``file_string://<a>!<b>!...``: mod_dptools plays the parts in order and
    skips one that cannot be opened (``next_file``, mod_dptools.c:4961-5030).

    Each part is validated (:func:`tts_media`, or an explicit media without
    ``!``): a URL must come from :func:`http_media` with ``!`` encoded.
    """
    checked = [_check_playlist_part(p) for p in parts]
    if not checked:
        raise EslArgumentError("parts", parts, "must not be empty")
    if len(checked) > PLAYLIST_MAX_PARTS:
        raise EslArgumentError("parts", len(checked), f"at most {PLAYLIST_MAX_PARTS} parts")
    media = "file_string://" + "!".join(checked)
    if len(media) > PLAYLIST_MAX_CHARS:
        raise EslArgumentError("parts", len(media), f"at most {PLAYLIST_MAX_CHARS} characters")
    return media


def http_part(url: str) -> str:
    """:func:`http_media` for a playlist part: ``!`` also percent-encoded."""
    return check_media("http_cache://" + quote_url(url).replace("!", "%21"))


def media_word(media: str) -> str:
    """One api-command word for ``media``: a plain media as is (:func:`check_media`),
    a playlist (:func:`playlist_media`) re-validated part by part and put in
    single quotes when it holds spaces (TTS text).

    The conference api splits its line on blanks outside ``'...'`` and strips
    the quotes (``separate_string_blank_delim`` + ``cleanup_separated_string``,
    switch_utils.c:2705-2870); a validated playlist holds no ``'`` or ``\\``,
    so the quotes cannot be closed early.
    """
    if isinstance(media, str) and media.startswith("file_string://"):
        again = playlist_media(media[len("file_string://") :].split("!"))
        return f"'{again}'" if " " in again else again
    return check_media(media)


def conference_hold_media_cmd(room: str, member_id: int, media: str) -> str:
    """``conference <room> hold <id> <media|'playlist'>``.

    Hold plays its file ONCE (``conference_member_play_file(member, data, 0,
    SWITCH_FALSE)``, conference_api.c:430-432; a member play has no loops,
    conference_member.c:605-607), and when it ends the held member hears the
    room again (B10): ``media`` must never end (``;loops=-1``, or a playlist
    ending with :data:`SILENCE_FOREVER`).
    """
    return _conf(room, "hold", check_member_id(member_id), media_word(media))


def conference_play_media_cmd(
    room: str,
    media: str,
    *,
    member_id: int | None = None,
    variables: Mapping[str, str] | None = None,
) -> str:
    """``conference <room> play '[{vars}]<media|playlist>' [<member_id>]``

    Like :func:`conference_play_cmd`, for a playlist too: the quotes go around
    ``{vars}`` and the media, which FreeSWITCH reads as one word (B5's vars
    still come back on play-file-done).
    """
    word = media_word(media)
    prefix = _vars_prefix(variables or {})
    # the {vars} go inside the quotes: FreeSWITCH must read them as the file's
    word = "'" + prefix + word[1:] if word.startswith("'") else prefix + word
    words = ["play", word]
    if member_id is not None:
        words.append(check_member_id(member_id))
    return _conf(room, *words)
