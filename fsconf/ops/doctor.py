"""``fsconf doctor``: is this FreeSWITCH (and this database) ready for fsconf?

Theory of operation
-------------------
The checks are pure functions from the text FreeSWITCH answers to an ``api``
command to a :class:`Check` (OK, WARN or FAIL, what was seen, and what to fix:
the file and the setting, as ``freeswitch/README.md`` names them).  They are
tested on the exact replies of a real FreeSWITCH 1.10/1.11 (``tests/data``
captures and ``mod_commands.c``):

* ``module_exists mod_x`` -> ``true`` / ``false``;
* ``global_getvar default_password`` -> the value (``1234`` in a vanilla
  ``vars.xml``); an unset variable's empty output reaches us as
  ``-ERR no reply``;
* ``xml_locate configuration configuration name conference.conf`` -> the
  ``<configuration>`` element, or ``can't find anything``;
* ``xml_locate dialplan context name default`` -> the ``default`` context;
* ``status`` -> "... session(s) per Sec out of max 30, ..." (the
  ``sessions-per-second`` of ``switch.conf.xml``);
* ``show modules`` -> CSV ``type,name,ikey,filename``: ``speech`` rows are
  TTS engines.

:func:`node_checks` asks for those replies through any ``api(text) -> str``
function, so it runs on a fake as well; :func:`diagnose_node` is the thin shell
that connects to one ``FSCONF_ESL`` node with our own ESL transport (not the
self-healing :class:`~fsconf.esl.inbound.InboundClient`, whose supervisor
would retry a refused connection or a wrong password forever instead of
saying which it was), and never prints the ESL password.

Choices:

* ``default_password`` = ``1234`` is a FAIL when the vanilla warning extension
  (the one that sleeps 10 s) comes before fsconf's ``socket`` extension in the
  ``default`` context, since then every call waits 10 s; it is a WARN
  otherwise (the order could not be seen, or fsconf's extension is first and
  only the weak password remains).
* ``sessions-per-second`` at the default 30 (or lower) is a WARN: calls still
  work, bursts are throttled.
* A TTS engine other than flite is a WARN: fsconf's default voices are flite's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from lxml import etree
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from fsconf.config import EslNode
from fsconf.errors import EslAuthError, EslError, EslTimeout, FsconfError
from fsconf.esl import commands
from fsconf.esl.frames import CommandReply, Frame
from fsconf.esl.transport import EslAuthTimeout, EslConnection
from fsconf.store.db import describe_error
from fsconf.store.migrate import current, pending

__all__ = [
    "Check",
    "Status",
    "check_conference_config",
    "check_database",
    "check_default_password",
    "check_module",
    "check_sessions_per_second",
    "check_tts",
    "diagnose_node",
    "exit_code",
    "node_checks",
    "redact_url",
]

Api = Callable[[str], str]
"""``api <text>`` -> the reply's body (or a command/reply's Reply-Text)."""

README: Final = "freeswitch/README.md"
CONFERENCE_CONF: Final = "autoload_configs/conference.conf.xml"
MODULES_CONF: Final = "autoload_configs/modules.conf.xml"
EVENT_SOCKET_CONF: Final = "autoload_configs/event_socket.conf.xml"
SWITCH_CONF: Final = "autoload_configs/switch.conf.xml"
DEFAULT_SPS: Final = 30
PROFILE: Final = "fsconf"
CONTROL_GROUPS: Final = ("fsconf-none", "fsconf-hangup-on-star")

#: Modules fsconf cannot work without, and why.
REQUIRED_MODULES: Final = (
    ("mod_conference", "runs the conference rooms"),
    ("mod_event_socket", "connects fsconf to FreeSWITCH, both ways"),
    ("mod_http_cache", "plays <Play>, waitUrl and holdUrl audio as http_cache://"),
)
#: TTS modules probed by name before ``show modules`` (flite is fsconf's default).
TTS_MODULES: Final = ("mod_flite", "mod_tts_commandline", "mod_cepstral", "mod_unimrcp")
#: Profile parameters that make mod_conference speak or play on its own (B4, DESIGN.md).
NOISY_PARAMS: Final = frozenset(
    {
        "tts-engine",
        "alone-sound",
        "enter-sound",
        "exit-sound",
        "moh-sound",
        "muted-sound",
        "unmuted-sound",
        "kicked-sound",
        "max-members-sound",
        "locked-sound",
        "is-locked-sound",
        "is-unlocked-sound",
        "pin-sound",
        "bad-pin-sound",
        "perpetual-sound",
    }
)

_SPS = re.compile(r"session\(s\) per Sec out of max (\d+)")
_NOT_FOUND = "can't find anything"
#: What mod_event_socket sends for an empty api output (an unset global variable).
_EMPTY = "-ERR no reply"


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report; ``scope`` is ``database`` or an ESL node's host:port."""

    scope: str
    name: str
    status: Status
    detail: str
    fix: str = ""


def exit_code(checks: Iterable[Check]) -> int:
    """0 when nothing FAILed (WARN is fine), 1 otherwise."""
    return 1 if any(check.status is Status.FAIL for check in checks) else 0


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


# --- modules ------------------------------------------------------------------------


def check_module(scope: str, module: str, reply: str, why: str = "") -> Check:
    answer = reply.strip()
    because = f" (it {why})" if why else ""
    if answer == "true":
        return Check(scope, module, Status.OK, "loaded")
    fix = (
        f'load it now with `fs_cli -x "load {module}"`, and add <load module="{module}"/> '
        f"to {MODULES_CONF}{because}"
    )
    if answer == "false":
        return Check(scope, module, Status.FAIL, "not loaded", fix)
    return Check(scope, module, Status.FAIL, f"unexpected answer {_first_line(answer)!r}", fix)


def speech_engines(show_modules: str) -> list[tuple[str, str]]:
    """``(engine, module)`` of every ``speech`` row of ``show modules``."""
    engines = []
    for line in show_modules.splitlines():
        fields = line.strip().split(",")
        if len(fields) >= 3 and fields[0] == "speech":
            engines.append((fields[1], fields[2]))
    return engines


def check_tts(scope: str, loaded: Iterable[str], show_modules: str | None) -> Check:
    """``loaded``: the TTS_MODULES that ``module_exists`` said ``true`` for."""
    modules = list(loaded)
    if "mod_flite" in modules:
        return Check(scope, "tts", Status.OK, "mod_flite loaded (fsconf's default voices)")
    engines = speech_engines(show_modules or "")
    found = modules or [f"{engine} ({module})" for engine, module in engines]
    if found:
        return Check(
            scope,
            "tts",
            Status.WARN,
            f"TTS engine {', '.join(found)} loaded, but not mod_flite",
            "fsconf speaks <Say> with flite's kal/slt voices by default: load mod_flite "
            f"({MODULES_CONF}) or configure fsconf's voices for this engine",
        )
    return Check(
        scope,
        "tts",
        Status.FAIL,
        "no TTS engine loaded: <Say> cannot speak",
        f'load mod_flite: `fs_cli -x "load mod_flite"` and <load module="mod_flite"/> '
        f"in {MODULES_CONF}",
    )


# --- XML replies ------------------------------------------------------------------


def _parse_xml(text: str) -> etree._Element | None:
    """A hardened parse of a switch's XML reply (no entities, DTD or network)."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(text.strip().encode("utf-8"), parser)
    except etree.XMLSyntaxError:
        return None
    return root


def check_conference_config(scope: str, reply: str) -> list[Check]:
    """The ``fsconf`` profile and the caller-control groups, from ``xml_locate``."""
    merge = (
        f"merge freeswitch/{CONFERENCE_CONF} into /etc/freeswitch/{CONFERENCE_CONF}, "
        "then `fs_cli -x reloadxml`"
    )
    names = [f"profile {PROFILE}", *(f"caller-controls {group}" for group in CONTROL_GROUPS)]
    text = reply.strip()
    if text.startswith(_NOT_FOUND):
        return [
            Check(scope, name, Status.FAIL, "no conference.conf at all", merge) for name in names
        ]
    root = _parse_xml(text) if text.startswith("<") else None
    if root is None:
        detail = f"cannot read conference.conf: {_first_line(text)[:120]!r}"
        return [Check(scope, name, Status.FAIL, detail, merge) for name in names]

    checks = []
    profile = next(
        (node for node in root.iterfind("./profiles/profile") if node.get("name") == PROFILE), None
    )
    if profile is None:
        checks.append(Check(scope, names[0], Status.FAIL, "missing from conference.conf", merge))
    else:
        params = {
            str(param.get("name")): str(param.get("value", ""))
            for param in profile.iterfind("./param")
        }
        noisy = sorted(NOISY_PARAMS & params.keys())
        if noisy:
            checks.append(
                Check(
                    scope,
                    names[0],
                    Status.WARN,
                    f"has {', '.join(noisy)}: mod_conference will speak or play on its own "
                    "(e.g. 'you are currently the only person...')",
                    f'remove these params from <profile name="{PROFILE}"> in {CONFERENCE_CONF} '
                    f"(see freeswitch/{CONFERENCE_CONF}), then `fs_cli -x reloadxml`",
                )
            )
        else:
            checks.append(Check(scope, names[0], Status.OK, "present"))
    groups = {node.get("name") for node in root.iterfind("./caller-controls/group")}
    for group, name in zip(CONTROL_GROUPS, names[1:], strict=True):
        if group in groups:
            checks.append(Check(scope, name, Status.OK, "present"))
        else:
            checks.append(Check(scope, name, Status.FAIL, "missing from conference.conf", merge))
    return checks


def _runs_socket(extension: etree._Element) -> bool:
    return any(action.get("application") == "socket" for action in extension.iterfind(".//action"))


def _is_password_warning(extension: etree._Element) -> bool:
    return any(
        "default_password" in (condition.get("field") or "")
        and any(action.get("application") == "sleep" for action in condition.iterfind("./action"))
        for condition in extension.iterfind(".//condition")
    )


def warning_before_fsconf(dialplan_reply: str) -> bool | None:
    """True if the ``default`` context runs the 10 s warning before fsconf's
    ``socket`` extension, False if fsconf's comes first, None if unknown."""
    root = _parse_xml(dialplan_reply) if dialplan_reply.strip().startswith("<") else None
    if root is None:
        return None
    warned = False
    for extension in root.iterfind(".//extension"):
        if _runs_socket(extension):
            return warned
        warned = warned or _is_password_warning(extension)
    # No socket extension in this context: fsconf's calls may not pass here at all.
    return None


def check_default_password(scope: str, reply: str, dialplan_reply: str | None = None) -> Check:
    value = reply.strip()
    if value.startswith("-ERR") and value != _EMPTY:
        return Check(
            scope,
            "default_password",
            Status.WARN,
            f"cannot read it: {_first_line(value)[:80]!r}",
            "check default_password in vars.xml: it must not be 1234",
        )
    if value != "1234":
        detail = "not set" if value == _EMPTY or not value else "changed from 1234"
        return Check(scope, "default_password", Status.OK, detail)
    change = "change default_password in vars.xml, then `fs_cli -x reloadxml`"
    order = warning_before_fsconf(dialplan_reply or "")
    if order is True:
        return Check(
            scope,
            "default_password",
            Status.FAIL,
            "is 1234, and the vanilla default context sleeps 10 s (its warning extension) "
            "before it reaches fsconf's socket extension: every call waits 10 s",
            f"{change}; or include dialplan/default/00_fsconf.xml before the vanilla "
            f"extensions (see {README})",
        )
    seen = (
        "fsconf's extension comes first, so calls are not delayed, but the password is weak"
        if order is False
        else "calls routed after the vanilla warning extension sleep 10 s"
    )
    return Check(
        scope,
        "default_password",
        Status.WARN,
        f"is 1234: {seen}",
        f"{change}; and keep dialplan/default/00_fsconf.xml first in the default context "
        f"(see {README})",
    )


def check_sessions_per_second(scope: str, status_reply: str) -> Check:
    match = _SPS.search(status_reply)
    if match is None:
        return Check(
            scope,
            "sessions-per-second",
            Status.WARN,
            f"not found in the answer to `status`: {_first_line(status_reply)[:80]!r}",
            f"check sessions-per-second in {SWITCH_CONF}",
        )
    limit = int(match.group(1))
    if limit > DEFAULT_SPS:
        return Check(scope, "sessions-per-second", Status.OK, f"{limit}")
    what = "the default 30" if limit == DEFAULT_SPS else f"{limit}, below the default 30"
    return Check(
        scope,
        "sessions-per-second",
        Status.WARN,
        f"{what}: a loopback call costs two sessions, so bursts of joins are throttled",
        f'raise <param name="sessions-per-second" .../> in {SWITCH_CONF} (e.g. 200), '
        'then restart FreeSWITCH (or `fs_cli -x "fsctl sps 200"`)',
    )


# --- the runner -------------------------------------------------------------------


class _Lost(Exception):
    """Internal: the connection failed in the middle of the checks."""


def node_checks(scope: str, api: Api) -> list[Check]:
    """Every check of one node, asked through ``api`` (see the module docstring)."""
    checks: list[Check] = []
    for module, why in REQUIRED_MODULES:
        checks.append(check_module(scope, module, api(f"module_exists {module}"), why))
    loaded = [module for module in TTS_MODULES if api(f"module_exists {module}").strip() == "true"]
    show = None if "mod_flite" in loaded or loaded else api("show modules")
    checks.append(check_tts(scope, loaded, show))
    checks.extend(
        check_conference_config(
            scope, api("xml_locate configuration configuration name conference.conf")
        )
    )
    password = api("global_getvar default_password")
    dialplan = (
        api("xml_locate dialplan context name default") if password.strip() == "1234" else None
    )
    checks.append(check_default_password(scope, password, dialplan))
    checks.append(check_sessions_per_second(scope, api("status")))
    return checks


def _ignore(_frame: Frame) -> None:
    """Doctor subscribes to nothing; a stray event is dropped."""


def diagnose_node(node: EslNode, *, timeout: float = 5.0) -> list[Check]:
    """Connect to one node and run every check; never raises for the switch's faults."""
    scope = node.name
    listen = (
        f"is FreeSWITCH running, with mod_event_socket listening on {node.name}? "
        f"(listen-ip / listen-port in {EVENT_SOCKET_CONF}; FSCONF_ESL)"
    )
    try:
        connection = EslConnection.open(
            node.host, node.port, connect_timeout=timeout, on_frame=_ignore
        )
    except EslTimeout:
        return [Check(scope, "connect", Status.FAIL, f"no TCP answer within {timeout:g}s", listen)]
    except EslError as error:
        return [Check(scope, "connect", Status.FAIL, str(error), listen)]
    try:
        try:
            connection.authenticate(node.password, timeout=timeout)
        except EslAuthTimeout:
            return [
                Check(
                    scope,
                    "connect",
                    Status.FAIL,
                    f"connected, but no ESL auth/request within {timeout:g}s: "
                    "is this port FreeSWITCH's Event Socket?",
                    listen,
                )
            ]
        except EslAuthError as error:
            if connection.rejection is not None:
                return [
                    Check(
                        scope,
                        "connect",
                        Status.FAIL,
                        "refused by FreeSWITCH's ACL (rude rejection)",
                        f"allow this host in apply-inbound-acl in {EVENT_SOCKET_CONF}",
                    )
                ]
            return [
                Check(
                    scope,
                    "connect",
                    Status.FAIL,
                    f"authentication failed: {error}",
                    f'the password in FSCONF_ESL must equal <param name="password"> in '
                    f"{EVENT_SOCKET_CONF}",
                )
            ]
        except EslError as error:
            return [Check(scope, "connect", Status.FAIL, f"during authentication: {error}", listen)]

        def api(text: str) -> str:
            try:
                reply = connection.request(commands.api(text), timeout=timeout)
            except EslError as error:
                raise _Lost(f"{text!r}: {error}") from None
            return reply.reply_text if isinstance(reply, CommandReply) else reply.body

        try:
            version = _first_line(api("version")) or "version unknown"
            connected = Check(scope, "connect", Status.OK, f"authenticated; {version}")
            return [connected, *node_checks(scope, api)]
        except _Lost as lost:
            return [Check(scope, "connect", Status.FAIL, f"connection lost at {lost}", listen)]
    finally:
        connection.close()


def redact_url(url: str) -> str:
    """A database URL fit to print: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def check_database(url: str) -> Check:
    scope = "database"
    shown = redact_url(url)
    try:
        behind = pending(url)
        revision = current(url)
    except SQLAlchemyError as error:
        return Check(
            scope,
            "reachable",
            Status.FAIL,
            f"{shown}: {describe_error(error)}",
            "check FSCONF_DATABASE_URL and that the database server is up",
        )
    except FsconfError as error:
        return Check(
            scope, "reachable", Status.FAIL, f"{shown}: {error}", "check FSCONF_DATABASE_URL"
        )
    if behind:
        return Check(
            scope,
            "migrated",
            Status.FAIL,
            f"{shown}: schema at {revision or 'nothing (empty database)'}, not the newest",
            "run `fsconf db upgrade`",
        )
    return Check(scope, "migrated", Status.OK, f"{shown}: schema up to date ({revision})")
