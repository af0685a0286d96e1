"""End to end: TwiML over real HTTP, our OutboundServer, FakeSwitch placing the call.

Assertions are on behaviour: the ESL applications issued, in order (from
``fs.commands``), the HTTP requests received (method, parameters, a valid
X-Twilio-Signature), the conference gateway's joins, and the rows stored.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from fsconf.calls.fetch import FetchTimeouts
from fsconf.calls.gateway import CallHandle
from fsconf.calls.program import DialOutcome
from fsconf.twiml import Beep, ConferenceRecord, HttpMethod
from tests.calls.conftest import AUTH_TOKEN, Harness, TwimlServer, make_harness

ERROR_SPEECH = ("speak", "flite|kal|We are sorry, an application error has occurred. Goodbye.")
BYE = ("hangup", "NORMAL_CLEARING")
ANSWER = ("answer", None)
HI = ("speak", "flite|slt|Hi 5 dollars")


def response(body: str) -> str:
    return f"<Response>{body}</Response>"


# --- verbs --------------------------------------------------------------------------

VERBS = [
    ("<Say>Hello</Say>", [("answer", None), ("speak", "flite|kal|Hello"), BYE]),
    ('<Say voice="woman" loop="2">Hi $5</Say>',
     [ANSWER, HI, HI, BYE]),
    ('<Say voice="Polly.Joanna" language="en-GB">x</Say>', [ANSWER, ("speak", "flite|slt|x"), BYE]),
    ('<Play loop="2">http://media.example/a.mp3</Play>',
     [("answer", None), ("playback", "http_cache://http://media.example/a.mp3"),
      ("playback", "http_cache://http://media.example/a.mp3"), BYE]),
    ('<Play digits="1w2#"/>', [("answer", None), ("send_dtmf", "1w2#"), BYE]),
    ('<Pause length="3"/><Say>a</Say>', [("sleep", "3000"), ANSWER, ("speak", "flite|kal|a"), BYE]),
    ("<Hangup/><Say>never</Say>", [BYE]),
    ("<Reject/>", [("hangup", "CALL_REJECTED")]),
    ('<Reject reason="busy"/>', [("hangup", "USER_BUSY")]),
    ("<Say>a</Say><Reject/>", [("answer", None), ("speak", "flite|kal|a"), BYE]),
    ("", [BYE]),
]  # fmt: skip


@pytest.mark.parametrize(("body", "apps"), VERBS)
def test_each_verb(harness: Harness, body: str, apps: list[tuple[str, str | None]]) -> None:
    uuid = harness.call(harness.web.xml("/voice", response(body)))
    assert harness.apps() == apps
    assert harness.alerts() == []
    expected = {"USER_BUSY": "busy", "CALL_REJECTED": "no-answer"}.get(
        apps[-1][1] or "", "completed"
    )
    assert harness.call_status(uuid) == expected


def test_play_loop_zero_plays_until_the_caller_hangs_up(harness: Harness) -> None:
    uuid = harness.call(
        harness.web.xml("/voice", response('<Play loop="0">http://m.example/a.wav</Play>')),
        wait=False,
    )
    harness.until(lambda: harness.app_names().count("playback") >= 5)
    harness.fs.hangup(uuid)
    harness.wait_finished()
    assert set(harness.app_names()) == {"answer", "playback"}
    assert harness.call_status(uuid) == "completed"


def test_play_url_not_found_is_an_alert_and_the_call_goes_on(harness: Harness) -> None:
    harness.fs.missing_files.add("http_cache://http://m.example/missing.wav")
    body = response("<Play>http://m.example/missing.wav</Play><Say>after</Say>")
    harness.call(harness.web.xml("/voice", body))
    assert harness.app_names() == ["answer", "playback", "speak", "hangup"]
    assert harness.alerts() == [11200]


def test_request_parameters_signature_and_redirect_methods(harness: Harness) -> None:
    web = harness.web
    web.xml("/voice", response('<Say>a</Say><Redirect method="GET">/second?x=1</Redirect>'))
    web.xml("/second", response("<Redirect>third</Redirect>"))
    web.xml("/third", response("<Hangup/>"))
    uuid = harness.call(web.url("/voice"))
    first, second, third = web.requests
    assert [(r.method, r.path) for r in web.requests] == [
        ("POST", "/voice"),
        ("GET", "/second"),
        ("POST", "/third"),
    ]
    assert all(r.valid and r.signature for r in web.requests)
    assert first.params == {
        "AccountSid": "AC" + "a" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": "CA" + uuid.replace("-", ""),
        "CallStatus": "ringing",
        "Called": "+15550000000",
        "Caller": "+15551230001",
        "Direction": "inbound",
        "From": "+15551230001",
        "To": "+15550000000",
    }
    assert second.params["x"] == "1" and second.params["CallStatus"] == "in-progress"
    assert third.params["CallStatus"] == "in-progress"
    assert AUTH_TOKEN not in str(web.requests)


def test_voice_url_from_settings_when_the_channel_has_none(
    session_factory: object, web: TwimlServer
) -> None:
    # The account has no voice_url: FSCONF_VOICE_URL (the settings) applies.
    for harness in make_harness(session_factory, web, voice_url=web.url("/default")):
        web.xml("/default", response("<Say>d</Say>"))
        harness.call(None)
        assert web.paths() == ["/default"]


def test_text_plain_is_spoken_and_audio_is_played(harness: Harness) -> None:
    harness.web.routes["/voice"] = (200, "text/plain; charset=utf-8", b"Thanks for calling")
    harness.call(harness.web.url("/voice"))
    assert harness.apps() == [("answer", None), ("speak", "flite|kal|Thanks for calling"), BYE]


# --- <Dial><Conference>: the eight examples of the spec -------------------------------


def example_documents() -> list[tuple[str, str, dict[str, object]]]:
    """(name, TwiML, expected Conference attributes) built with the twilio helper."""
    out: list[tuple[str, str, dict[str, object]]] = []

    def add(name: str, expected: dict[str, object], **attributes: object) -> None:
        room = str(attributes.pop("room"))
        vr = VoiceResponse()
        dial = Dial(**{k[5:]: v for k, v in attributes.items() if k.startswith("dial_")})
        dial.conference(room, **{k: v for k, v in attributes.items() if not k.startswith("dial_")})
        vr.append(dial)
        out.append((name, str(vr), {"room": room, **expected}))

    add("1 conference", {}, room="Room 1234")
    add(
        "2a moderated wait",
        {"start_conference_on_enter": False},
        room="moderated-conference-room",
        start_conference_on_enter=False,
    )
    add(
        "2b moderator",
        {"start_conference_on_enter": True, "end_conference_on_exit": True},
        room="moderated-conference-room",
        start_conference_on_enter=True,
        end_conference_on_exit=True,
    )
    add(
        "3 evented",
        {"status_callback": "https://myapp.com/events"},
        room="EventedConf",
        status_callback="https://myapp.com/events",
        status_callback_event="start end join leave mute hold",
    )
    add("4 muted", {"muted": True}, room="SimpleRoom", muted=True)
    add(
        "5 bridge",
        {
            "beep": Beep.FALSE,
            "wait_url": "http://your-webhook-host.com",
            "end_conference_on_exit": True,
        },
        room="NoMusicNoBeepRoom",
        beep=False,
        wait_url="http://your-webhook-host.com",
        start_conference_on_enter=True,
        end_conference_on_exit=True,
    )
    add("6a hold", {"beep": Beep.FALSE}, room="Customer Waiting Room", beep=False)
    add(
        "6b agent",
        {"beep": Beep.FALSE, "end_conference_on_exit": True},
        room="Customer Waiting Room",
        beep=False,
        end_conference_on_exit=True,
    )
    add(
        "7 dial attributes",
        {},
        room="LoveTwilio",
        dial_action="handleLeaveConference.php",
        dial_method="POST",
        dial_hangup_on_star=True,
        dial_time_limit=30,
    )
    add(
        "8 recording",
        {"record": ConferenceRecord.RECORD_FROM_START},
        room="LoveTwilio",
        record="record-from-start",
        recording_status_callback="www.myexample.com",
    )
    return out  # fmt: skip


EXAMPLES = example_documents()


@pytest.mark.parametrize(("name", "twiml", "expected"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_spec_examples_reach_the_gateway(
    harness: Harness, name: str, twiml: str, expected: dict[str, object]
) -> None:
    web = harness.web
    web.xml("/voice", twiml)
    web.xml("/handleLeaveConference.php", response("<Say>bye</Say>"))
    uuid = harness.call(web.url("/voice"))
    [(call_sid, dial, conference)] = harness.gateway.joins
    assert call_sid == "CA" + uuid.replace("-", "")
    assert dial.conference is conference
    for attribute, value in expected.items():
        assert getattr(conference, attribute) == value, attribute
    if name.startswith("7"):
        assert (dial.hangup_on_star, dial.time_limit, dial.method) == (True, 30, HttpMethod.POST)
        action = web.requests[1]
        assert (action.method, action.path, action.valid) == (
            "POST",
            "/handleLeaveConference.php",
            True,
        )
        assert action.params["DialCallStatus"] == "completed"
        assert action.params["CallStatus"] == "in-progress"
        assert "DialCallSid" not in action.params
        assert harness.apps() == [("answer", None), ("speak", "flite|kal|bye"), BYE]
    else:
        assert web.paths() == ["/voice"]
        assert harness.apps() == [("answer", None), BYE]
    assert harness.call_status(uuid) == "completed"


def test_dial_without_action_continues_with_the_next_verb(harness: Harness) -> None:
    body = response("<Dial><Conference>r</Conference></Dial><Say>next</Say>")
    harness.call(harness.web.xml("/voice", body))
    assert harness.apps() == [("answer", None), ("speak", "flite|kal|next"), BYE]


def test_dial_action_get_with_the_gateway_params(harness: Harness) -> None:
    harness.gateway.outcome = DialOutcome("completed", params=(("ConferenceSid", "CF" + "0" * 32),))
    body = response(
        '<Dial action="/after" method="GET"><Conference>r</Conference></Dial><Say>no</Say>'
    )
    harness.web.xml("/after", response("<Hangup/>"))
    harness.call(harness.web.xml("/voice", body))
    action = harness.web.requests[1]
    assert action.method == "GET" and action.valid
    assert action.params["DialCallStatus"] == "completed"
    assert action.params["ConferenceSid"] == "CF" + "0" * 32
    assert harness.app_names() == ["answer", "hangup"]


# --- the wait audio seen by the gateway ---------------------------------------------


def test_gateway_wait_audio_restricted_twiml_then_stop(harness: Harness) -> None:
    web = harness.web
    web.xml("/wait", response("<Say>please wait</Say><Play>http://m.example/moh.mp3</Play>"))
    seen: list[object] = []

    def behaviour(call: CallHandle) -> DialOutcome:
        loop = call.start_audio(web.url("/wait"), "POST")
        seen.append(loop.wait_ready(5))
        harness.until(lambda: harness.app_names().count("playback") >= 2)
        loop.stop()
        seen.append(loop.running)
        return DialOutcome()

    harness.gateway.behaviour = behaviour
    harness.call(web.xml("/voice", response("<Dial><Conference>r</Conference></Dial>")))
    assert seen == [None, False]
    names = harness.app_names()
    assert names[:4] == ["answer", "speak", "playback", "speak"]  # the document is replayed
    wait = web.requests[1]
    assert wait.path == "/wait" and wait.valid and wait.params["CallStatus"] == "in-progress"
    breaks = [c for c in harness.api_commands() if c.startswith("uuid_break")]
    assert breaks and all(not c.endswith(" all") for c in breaks)


@pytest.mark.parametrize(
    ("wait_url", "media"),
    [(None, "local_stream://moh"), ("", "silence_stream://-1")],
)
def test_gateway_wait_audio_default_and_silence(
    harness: Harness, wait_url: str | None, media: str
) -> None:
    def behaviour(call: CallHandle) -> DialOutcome:
        loop = call.start_audio(wait_url)
        harness.until(lambda: media in [a for _, a in harness.apps()])
        loop.stop()
        return DialOutcome()

    harness.gateway.behaviour = behaviour
    harness.call(harness.web.xml("/voice", response("<Dial><Conference>r</Conference></Dial>")))
    assert ("playback", media) in harness.apps()


def test_gateway_wait_url_answering_audio_is_played_directly(harness: Harness) -> None:
    harness.web.routes["/moh.mp3"] = (200, "audio/mpeg", b"\xff\xfb" * 100)

    def behaviour(call: CallHandle) -> DialOutcome:
        loop = call.start_audio(harness.web.url("/moh.mp3"), "GET")
        assert loop.wait_ready(5) is None
        harness.until(lambda: "playback" in harness.app_names())
        loop.stop()
        return DialOutcome()

    harness.gateway.behaviour = behaviour
    harness.call(harness.web.xml("/voice", response("<Dial><Conference>r</Conference></Dial>")))
    assert ("playback", f"http_cache://{harness.web.url('/moh.mp3')}") in harness.apps()


def test_gateway_wait_url_failure_is_reported_to_the_caller_of_start_audio(
    harness: Harness,
) -> None:
    harness.web.xml(
        "/wait", response("<Dial><Conference>nested</Conference></Dial>")
    )  # not allowed
    errors: list[object] = []

    def behaviour(call: CallHandle) -> DialOutcome:
        loop = call.start_audio(harness.web.url("/wait"))
        error = loop.wait_ready(5)
        errors.append(error and error.code)  # type: ignore[attr-defined]
        return DialOutcome("failed")

    harness.gateway.behaviour = behaviour
    body = response("<Dial><Conference>r</Conference></Dial><Say>continues</Say>")
    harness.call(harness.web.xml("/voice", body))
    assert errors == [12200]
    assert harness.alerts() == [12200]
    assert harness.apps() == [("answer", None), ("speak", "flite|kal|continues"), BYE]


# --- the bad-input table ----------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<Response><Say>&lol3;</Say></Response>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<Response><Say>&x;</Say></Response>"
)


def closed_port_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}/voice"


BAD_INPUTS = [
    ("unreachable", "refused", 11205),
    ("bad host", "dns", 11210),
    ("404", (404, "text/html", b"nope"), 11200),
    ("500", (500, "text/xml", b"<Response/>"), 11200),
    ("slow server", "slow", 11205),
    ("wrong content type", (200, "application/json", b"{}"), 12300),
    ("not xml", (200, "text/xml", b"hello there"), 12100),
    ("xxe", (200, "text/xml", XXE), 12100),
    ("billion laughs", (200, "text/xml", BILLION_LAUGHS), 12100),
    (
        "10 MB document",
        (200, "text/xml", b"<Response>" + b" " * 10_000_000 + b"</Response>"),
        11750,
    ),
    ("unknown verb", (200, "text/xml", b"<Response><Dance/></Response>"), 12200),
    (
        "unknown attribute",
        (200, "text/xml", b'<Response><Say colour="red">x</Say></Response>'),
        12200,
    ),
    ("bad enum value", (200, "text/xml", b'<Response><Reject reason="maybe"/></Response>'), 12200),
    (
        "redirect loop",
        (200, "text/xml", b"<Response><Redirect>/voice</Redirect></Response>"),
        14106,
    ),
]


@pytest.fixture
def strict_harness(session_factory: object, web: TwimlServer) -> Iterator[Harness]:
    timeouts = FetchTimeouts(connect=0.5, read=0.3, total=0.5)
    yield from make_harness(session_factory, web, timeouts=timeouts, max_idle_documents=5)


@pytest.mark.parametrize(("name", "route", "code"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input(strict_harness: Harness, name: str, route: object, code: int) -> None:
    harness = strict_harness
    web = harness.web
    if route == "refused":
        url = closed_port_url()
    elif route == "dns":
        url = "http://fsconf-no-such-host.invalid/voice"
    elif route == "slow":
        web.routes["/voice"] = lambda params: (
            web.release.wait(),
            (200, "text/xml", b"<Response/>"),
        )[1]
        url = web.url("/voice")
    else:
        web.routes["/voice"] = route  # type: ignore[assignment]
        url = web.url("/voice")
    uuid = harness.call(url)
    assert harness.alerts() == [code]
    assert harness.apps() == [("answer", None), ERROR_SPEECH, BYE]
    assert harness.call_status(uuid) == "completed"
    if name == "redirect loop":
        assert len(web.requests) == 5


def test_error_goes_to_the_fallback_url_with_error_code_and_url(
    session_factory: object, web: TwimlServer
) -> None:
    for harness in make_harness(session_factory, web, fallback_url=web.url("/fallback")):
        web.routes["/voice"] = (500, "text/plain", b"boom")
        web.xml("/fallback", response("<Say>sorry</Say>"))
        harness.call(web.url("/voice"))
        fallback = web.requests[1]
        assert (fallback.method, fallback.path, fallback.valid) == ("POST", "/fallback", True)
        assert fallback.params["ErrorCode"] == "11200"
        assert fallback.params["ErrorUrl"] == web.url("/voice")
        assert harness.apps() == [("answer", None), ("speak", "flite|kal|sorry"), BYE]
        assert harness.alerts() == [11200]


def test_failing_fallback_ends_with_the_spoken_error(
    session_factory: object, web: TwimlServer
) -> None:
    for harness in make_harness(session_factory, web, fallback_url=web.url("/fallback")):
        web.routes["/voice"] = (200, "text/xml", b"<nope")
        harness.call(web.url("/voice"))
        assert web.paths() == ["/voice", "/fallback"]
        assert harness.alerts() == [11200, 12100]
        assert harness.apps() == [("answer", None), ERROR_SPEECH, BYE]


def test_unknown_account_is_refused(harness: Harness) -> None:
    harness.call(
        harness.web.xml("/voice", response("<Say>x</Say>")), fsconf_account_sid="AC" + "f" * 32
    )
    assert harness.apps() == [("hangup", "CALL_REJECTED")]
    assert harness.web.requests == []


# --- the caller hangs up in the middle of every verb ---------------------------------


@pytest.fixture
def slow_harness(session_factory: object, web: TwimlServer) -> Iterator[Harness]:
    # Media lasts 1000 s: a verb runs until the caller hangs up.
    yield from make_harness(session_factory, web, time_scale=1000.0)


HANGUP_CASES = [
    ("say", "<Say>long</Say><Say>never</Say>", "speak", "completed"),
    ("play", "<Play>http://m.example/a.wav</Play><Say>never</Say>", "playback", "completed"),
    ("pause", '<Pause length="5"/><Say>never</Say>', "sleep", "no-answer"),
    (
        "dial wait",
        "<Dial><Conference>r</Conference></Dial><Say>never</Say>",
        "playback",
        "completed",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "app", "status"), HANGUP_CASES, ids=[c[0] for c in HANGUP_CASES]
)
def test_caller_hangup_during_a_verb(
    slow_harness: Harness, name: str, body: str, app: str, status: str
) -> None:
    harness = slow_harness

    def behaviour(call: CallHandle) -> DialOutcome:
        loop = call.start_audio(None)
        call.wait_hangup(10)
        loop.stop()
        return DialOutcome(hung_up=True)

    harness.gateway.behaviour = behaviour
    uuid = harness.call(harness.web.xml("/voice", response(body)), wait=False)
    harness.until(lambda: app in harness.app_names())
    harness.fs.hangup(uuid)
    harness.wait_finished()
    names = harness.app_names()
    assert names[-1] == app and "speak" not in names[names.index(app) + 1 :]
    assert harness.call_status(uuid) == status
    assert harness.alerts() == []


def test_caller_hangup_in_the_conference_still_requests_the_action(slow_harness: Harness) -> None:
    harness = slow_harness
    harness.web.xml("/after", response("<Say>ignored</Say>"))

    def behaviour(call: CallHandle) -> DialOutcome:
        call.wait_hangup(10)
        return DialOutcome(hung_up=True)

    harness.gateway.behaviour = behaviour
    body = response('<Dial action="/after"><Conference>r</Conference></Dial>')
    uuid = harness.call(harness.web.xml("/voice", body), wait=False)
    harness.until(lambda: len(harness.gateway.joins) == 1)
    harness.fs.hangup(uuid)
    harness.wait_finished()
    action = harness.web.requests[1]
    assert action.path == "/after" and action.params["CallStatus"] == "completed"
    assert action.params["DialCallStatus"] == "completed"
    assert harness.app_names() == ["answer"]
