"""Hostile TwiML served to real calls, through the whole stack.

``tests/twiml/test_hostile.py`` holds the parser alone to account; this module
checks what a *call* does with the same documents, with everything real on
loopback: the customer application serves the document, fsconf fetches it for
a call the FakeSwitch placed, and FreeSWITCH (the FakeSwitch) records every
command.  For each document:

* a refused one is stored as an Alert with Twilio's code, read back with
  ``fsconf alerts list --json``; the caller hears the error and is hung up
  (the account has no fallback URL), within a bounded time;
* an accepted one seats the caller in a conference;
* in both cases no FreeSWITCH command contains the hostile text.

Calls are placed concurrently (a call center's worth at once) to keep the
module fast; each call reads its own document and its own commands.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from xml.sax.saxutils import quoteattr

import pytest

from fsconf.demo import Stack
from fsconf.errors import TwimlError
from fsconf.twiml import parse_twiml
from fsconf.twiml.verbs import CONFERENCE_DEFAULTS
from tests.hostile.support import (
    ERROR_TEXT,
    Placed,
    alert_codes,
    hang_up,
    place,
    settle,
    switch_text,
)

#: Bounded: the slowest refused call must be over well within this.
CALL_SECONDS = 10.0

MARK = "HOSTILE7q"
"""In every hostile value, so that a scan of the switch's commands finds it."""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that tells whether anybody connected (an XXE/DTD fetch)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    yield server
    server.close()


def expected_code(stack: Stack, call: Placed, body: str) -> int | None:
    """What Twilio's rules (fsconf's parser) say about this document."""
    try:
        parse_twiml(body.encode("utf-8"), url=stack.customer.url(call.path))
    except TwimlError as error:
        return error.code
    return None


def assert_refused_like_twilio(call: Placed, code: int, alerts: dict[str, list[int]]) -> None:
    assert call.hung_up, f"{call.key}: still up"
    assert call.seconds < CALL_SECONDS, f"{call.key}: {call.seconds:.1f}s"
    assert alerts.get(call.call_sid) == [code], f"{call.key}: alerts {alerts.get(call.call_sid)}"
    names = [name for name, _ in call.apps]
    # The caller hears the error, then the call is hung up; nothing else ran.
    assert ("speak", f"flite|kal|{ERROR_TEXT}") in call.apps, f"{call.key}: {call.apps}"
    assert names[-1] == "hangup", f"{call.key}: {names}"
    assert "conference" not in names and "playback" not in names, f"{call.key}: {names}"


def entities_bomb() -> str:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><Response><Say>&lol9;</Say></Response>'
    )


def test_hostile_documents_are_refused_on_a_real_call(
    stack: Stack, stack_db_url: str, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    evil = f"http://127.0.0.1:{port}"
    documents = {
        "XXE file": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<Response><Say>&x;</Say></Response>",
        "XXE http": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{evil}/x">]>'
        "<Response><Dial><Conference>&x;</Conference></Dial></Response>",
        "billion laughs": entities_bomb(),
        "external DTD": f'<!DOCTYPE Response SYSTEM "{evil}/twiml.dtd">'
        "<Response><Say>hi</Say></Response>",
        "parameter entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{evil}/p.dtd"> %p;]><Response/>',
        "10 MB": "<Response><Say>" + "a" * (10 * 1024 * 1024) + "</Say></Response>",
        "deep nesting": "<Response>" + "<Say>" * 3000 + "</Say>" * 3000 + "</Response>",
        "deep nesting in Dial": "<Response><Dial>"
        + "<Conference>" * 1000
        + "</Conference>" * 1000
        + "</Dial></Response>",
        "unknown verb": f"<Response><{MARK}Exec>rm -rf /</{MARK}Exec></Response>",
        "Dial Number": "<Response><Dial><Number>+15551234567</Number></Dial></Response>",
        "two conferences": "<Response><Dial><Conference>a</Conference>"
        "<Conference>b</Conference></Dial></Response>",
        "not XML": f"{MARK} conference x kick all",
        "unclosed": "<Response><Dial><Conference>room",
        "NUL byte": f"<Response><Say>{MARK}\x00</Say></Response>",
        "empty room": "<Response><Dial><Conference>   </Conference></Dial></Response>",
    }
    sent_before = len(stack.switch.commands)
    calls = [place(stack, key, body) for key, body in documents.items()]
    settle(stack, calls, timeout=CALL_SECONDS * 2)
    alerts = alert_codes(stack_db_url)
    for call in calls:
        code = expected_code(stack, call, documents[call.key])
        assert code in (11750, 12100, 12200), f"{call.key}: the parser accepted it ({code})"
        assert_refused_like_twilio(call, code, alerts)
    # Nothing was fetched from the entity or DTD URLs.
    with pytest.raises(BlockingIOError):
        listener.accept()
    text = switch_text(stack, since=sent_before)
    assert MARK not in text and "/etc/passwd" not in text and "root:" not in text
    assert "lollol" not in text
    by_code: dict[int, int] = {}
    for call in calls:
        by_code[alerts[call.call_sid][0]] = by_code.get(alerts[call.call_sid][0], 0) + 1
    print(
        f"\nhostile TwiML documents: {len(calls)} calls refused, alerts by code {by_code}, "
        f"slowest {max(c.seconds for c in calls):.2f}s; no raw input in "
        f"{len(stack.switch.commands)} switch commands"
    )


# --- every <Conference> attribute, every kind of hostile value -------------------------

HOSTILE_VALUES = {
    "CR/LF": f"{MARK}&#13;&#10;api conference x kick all&#10;&#10;",
    "NUL": f"{MARK}&#0;",
    "10k chars": MARK + "x" * 10_000,
    "unicode": f"{MARK} Zoë 会议 🎉 \u202eevil\u200b",
    "negative": "-1",
    "huge": "99999999999999999999999999",
    "metacharacters": f"{MARK}${{system(rm -rf /)}}|{{a=b}}'\"@+ ^ \\",
    "relative URL": f"/{MARK}/${{x}}|{{y}}",
}
#: Attributes whose only acceptable values are numbers, booleans or enumerations.
CLOSED_VOCABULARY = {
    "muted", "beep", "startConferenceOnEnter", "endConferenceOnExit", "jitterBufferSize",
    "waitMethod", "maxParticipants", "record", "region", "trim", "coach",
    "statusCallbackEvent", "statusCallbackMethod", "recordingStatusCallbackMethod",
    "recordingStatusCallbackEvent",
}  # fmt: skip


def conference_document(attribute: str, value: str) -> str:
    # Values are written as XML (character references stay references), and
    # the attribute quoting is XML's own, as a templating app would produce.
    quoted = quoteattr(value).replace("&amp;#", "&#")
    return (
        f"<Response><Dial><Conference {attribute}={quoted}>"
        f"Room {MARK}</Conference></Dial></Response>"
    )


def test_every_conference_attribute_with_hostile_values(stack: Stack, stack_db_url: str) -> None:
    cases = {
        f"{attribute}={kind}": conference_document(attribute, value)
        for attribute in CONFERENCE_DEFAULTS
        for kind, value in HOSTILE_VALUES.items()
    }
    sent_before = len(stack.switch.commands)
    calls: list[Placed] = []
    for start in range(0, len(cases), 60):
        batch = [place(stack, key, body) for key, body in list(cases.items())[start : start + 60]]
        settle(stack, batch, timeout=CALL_SECONDS * 3)
        hang_up(stack, [call for call in batch if call.seated])
        calls += batch
    alerts = alert_codes(stack_db_url)
    refused = accepted = 0
    for call in calls:
        attribute, kind = call.key.split("=", 1)
        code = expected_code(stack, call, cases[call.key])
        if kind in ("CR/LF", "NUL", "10k chars") or attribute in CLOSED_VOCABULARY:
            assert code is not None, f"{call.key} was accepted"
        if code is None:
            assert call.seated, f"{call.key}: accepted but not seated ({call.apps})"
            assert 12200 not in alerts.get(call.call_sid, []), call.key
            accepted += 1
        else:
            assert_refused_like_twilio(call, code, alerts)
            refused += 1
    text = switch_text(stack, since=sent_before)
    for needle in (MARK, "kick all", "${", "会议", "\u202e", "x" * 200, "rm -rf", "99999999999"):
        assert needle not in text, f"{needle!r} reached FreeSWITCH"
    print(
        f"\nhostile <Conference> attributes: {len(CONFERENCE_DEFAULTS)} attributes x "
        f"{len(HOSTILE_VALUES)} values = {len(calls)} calls, {refused} refused with an alert, "
        f"{accepted} accepted (seated, nothing raw sent); slowest "
        f"{max(c.seconds for c in calls):.2f}s"
    )


def test_hostile_room_names_never_reach_freeswitch(stack: Stack, stack_db_url: str) -> None:
    rooms = {
        "conference kick": f"{MARK} conference x kick all",
        "expansion": f"{MARK} ${{uuid_kill ${{uuid}}}} {{origination_uuid=x}}",
        "separators": f"{MARK}@default+flags{{moderator}}|x|'\"",
        "unicode": f"{MARK} Ünïcødé 会议室 \u202e 🎉",
        "percent": f"{MARK}%0A%0Dapi%20hupall",
        "spaces": f"   {MARK}   spaced   out   ",
        "long": MARK + "r" * 118,
        "too long": MARK + "r" * 200,
        "CR/LF": f"{MARK}&#13;&#10;api hupall",
        "tab": f"{MARK}&#9;x",
    }
    cases = {
        key: f"<Response><Dial><Conference>{room}</Conference></Dial></Response>"
        for key, room in rooms.items()
    }
    sent_before = len(stack.switch.commands)
    calls = [place(stack, key, body) for key, body in cases.items()]
    settle(stack, calls, timeout=CALL_SECONDS * 2)
    hang_up(stack, [call for call in calls if call.seated])
    alerts = alert_codes(stack_db_url)
    outcome = {}
    for call in calls:
        code = expected_code(stack, call, cases[call.key])
        if code is None:
            assert call.seated, f"{call.key}: {call.apps}"
            outcome[call.key] = "seated"
        else:
            assert_refused_like_twilio(call, code, alerts)
            outcome[call.key] = f"refused {code}"
    assert outcome["too long"] == "refused 12200"
    assert outcome["CR/LF"] == "refused 12200"
    assert outcome["conference kick"] == "seated"
    text = switch_text(stack, since=sent_before)
    for needle in (MARK, "kick all", "hupall", "${", "会议室", "Ünïcødé", "flags{moderator}"):
        assert needle not in text, f"{needle!r} reached FreeSWITCH"
    print(f"\nhostile room names: {outcome}")
