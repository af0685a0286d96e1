"""The other verbs, <Dial>'s attributes, nesting rules and the restricted mode."""

from __future__ import annotations

import dataclasses

import pytest

from fsconf.twiml import (
    VERBS,
    Dial,
    DialRecord,
    Hangup,
    HttpMethod,
    Pause,
    Play,
    RecordingEvent,
    RecordingTrack,
    Redirect,
    Reject,
    RejectReason,
    Response,
    Say,
    Trim,
)
from fsconf.twiml.verbs import DIAL_DEFAULTS
from tests.twiml.support import DOC_URL, dial_of, parse, refused


def only_verb(text: str) -> object:
    (verb,) = parse(f"<Response>{text}</Response>").verbs
    return verb


# --- Response ----------------------------------------------------------------------


def test_empty_response() -> None:
    assert parse("<Response/>") == Response(verbs=(), url=DOC_URL, line=1)


def test_verbs_keep_order_and_lines() -> None:
    response = parse("<Response>\n<Say>a</Say>\n<Pause/>\n<Hangup/>\n</Response>")
    assert [type(verb) for verb in response.verbs] == [Say, Pause, Hangup]
    assert [verb.line for verb in response.verbs] == [2, 3, 4]
    assert isinstance(response.verbs, tuple)


def test_comments_and_processing_instructions_are_ignored() -> None:
    response = parse("<Response><!-- hi --><?php echo 1 ?><Hangup/><!-- x --></Response>")
    assert response.verbs == (Hangup(line=1),)


def test_tree_is_immutable() -> None:
    (say,) = parse("<Response><Say>a</Say></Response>").verbs
    assert isinstance(say, Say)
    with pytest.raises(dataclasses.FrozenInstanceError):
        say.text = "b"  # type: ignore[misc]
    assert not hasattr(say, "__dict__")  # slots


@pytest.mark.parametrize(
    "text",
    [
        "<Response>hello<Hangup/></Response>",
        "<Response><Hangup/>trailing</Response>",
        '<Response version="1"/>',
    ],
)
def test_response_refuses_text_and_attributes(text: str) -> None:
    refused(text, 12200)


@pytest.mark.parametrize(
    "text", ["<response/>", "<Foo/>", '<Response xmlns="urn:x"/>', "<RESPONSE/>"]
)
def test_wrong_root(text: str) -> None:
    error = refused(text, 12100)
    assert "root element" in error.reason


@pytest.mark.parametrize("tag", ["say", "SAY", "Speak", "Dialer"])
def test_unknown_verbs(tag: str) -> None:
    error = refused(f"<Response><{tag}/></Response>", 12200)
    assert error.reason == f"unknown verb <{tag}>"


@pytest.mark.parametrize(
    "tag",
    ["Gather", "Record", "Enqueue", "Leave", "Connect", "Stream", "Refer", "Sms", "Message",
     "Pay", "Start", "Stop", "Echo", "Number", "Client", "Sip", "Queue"],
)  # fmt: skip
def test_unsupported_verbs_say_so(tag: str) -> None:
    error = refused(f"<Response><{tag}>x</{tag}></Response>", 12200)
    assert "not supported by fsconf" in error.reason
    assert error.element == tag


def test_registry_is_explicit() -> None:
    assert set(VERBS) == {"Say", "Play", "Pause", "Redirect", "Hangup", "Reject", "Dial"}


# --- Say ---------------------------------------------------------------------------


def test_say_defaults() -> None:
    assert only_verb("<Say>Hello</Say>") == Say("Hello", None, None, 1, line=1)


def test_say_attributes() -> None:
    verb = only_verb('<Say voice="Polly.Joanna-Neural" language="en-US" loop="0">Hi</Say>')
    assert verb == Say("Hi", "Polly.Joanna-Neural", "en-US", 0, line=1)


def test_say_keeps_newlines_and_tabs() -> None:
    verb = only_verb("<Say>line one\n\tline two</Say>")
    assert isinstance(verb, Say)
    assert verb.text == "line one\n\tline two"


def test_say_ssml_is_reduced_to_text() -> None:
    verb = only_verb(
        "<Say>Hi<break time='1s'/>there <emphasis>you</emphasis>"
        "<say-as interpret-as='digits'>12</say-as></Say>"
    )
    assert isinstance(verb, Say)
    assert verb.text == "Hi there you12"


@pytest.mark.parametrize(
    "text",
    [
        '<Say loop="-1">x</Say>',
        '<Say loop="1001">x</Say>',
        '<Say voice="a b">x</Say>',
        '<Say voice="x;y">x</Say>',
        f'<Say voice="{"v" * 10_000}">x</Say>',
        '<Say language="english!">x</Say>',
        "<Say>a&#127;b</Say>",
        "<Say>a&#x85;b</Say>",
        f"<Say>{'x' * 4097}</Say>",
        f"<Say>{'x' * 10_000}</Say>",
        "<Say><Play>x</Play></Say>",
        "<Say><script>x</script></Say>",
        '<Say rate="fast">x</Say>',
    ],
)
def test_say_refusals(text: str) -> None:
    error = refused(f"<Response>{text}</Response>", 12200)
    assert error.element in ("Say", "Play", "script")


# --- Play, Pause, Redirect, Hangup, Reject ------------------------------------------


def test_play() -> None:
    verb = only_verb('<Play loop="3">music/a.mp3</Play>')
    assert verb == Play("https://app.example.com/voice/music/a.mp3", 3, None, line=1)


def test_play_digits_without_url() -> None:
    assert only_verb('<Play digits="1w2#*"/>') == Play(None, 1, "1w2#*", line=1)


@pytest.mark.parametrize(
    "text",
    [
        "<Play/>",
        "<Play>  </Play>",
        '<Play digits="1;2"/>',
        '<Play digits="12&#10;"/>',
        '<Play loop="x">a.mp3</Play>',
        "<Play>ftp://a/b.mp3</Play>",
        "<Play>file:///etc/passwd</Play>",
        "<Play>a<b/></Play>",
    ],
)
def test_play_refusals(text: str) -> None:
    refused(f"<Response>{text}</Response>", 12200)


def test_play_url_is_percent_encoded() -> None:
    verb = only_verb("<Play>my song é.mp3</Play>")
    assert isinstance(verb, Play)
    assert verb.url == "https://app.example.com/voice/my%20song%20%C3%A9.mp3"


def test_pause() -> None:
    assert only_verb("<Pause/>") == Pause(1, line=1)
    assert only_verb('<Pause length="10"/>') == Pause(10, line=1)


@pytest.mark.parametrize("length", ["-1", "1.5", "86401", "ten", "99999999999999"])
def test_pause_refusals(length: str) -> None:
    refused(f'<Response><Pause length="{length}"/></Response>', 12200)


def test_pause_refuses_text() -> None:
    refused("<Response><Pause>5</Pause></Response>", 12200)


@pytest.mark.parametrize(
    ("text", "url", "method"),
    [
        ("<Redirect>next</Redirect>", "https://app.example.com/voice/next", HttpMethod.POST),
        ('<Redirect method="GET">/a?b=c</Redirect>', "https://app.example.com/a?b=c",
         HttpMethod.GET),
        ('<Redirect method="get">http://x.example.com/</Redirect>', "http://x.example.com/",
         HttpMethod.GET),
    ],
)  # fmt: skip
def test_redirect(text: str, url: str, method: HttpMethod) -> None:
    assert only_verb(text) == Redirect(url, method, line=1)


@pytest.mark.parametrize(
    "text", ["<Redirect/>", '<Redirect method="PUT">a</Redirect>', "<Redirect>mailto:x</Redirect>"]
)
def test_redirect_refusals(text: str) -> None:
    refused(f"<Response>{text}</Response>", 12200)


def test_hangup() -> None:
    assert only_verb("<Hangup/>") == Hangup(line=1)


@pytest.mark.parametrize(
    "text", ['<Hangup reason="x"/>', "<Hangup>now</Hangup>", "<Hangup><Say>x</Say></Hangup>"]
)
def test_hangup_refusals(text: str) -> None:
    refused(f"<Response>{text}</Response>", 12200)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("<Reject/>", RejectReason.REJECTED), ('<Reject reason="busy"/>', RejectReason.BUSY)],
)
def test_reject(text: str, reason: RejectReason) -> None:
    assert only_verb(text) == Reject(reason, line=1)


@pytest.mark.parametrize("reason", ["Busy", "no", ""])
def test_reject_refusals(reason: str) -> None:
    refused(f'<Response><Reject reason="{reason}"/></Response>', 12200)


# --- Dial --------------------------------------------------------------------------


def dial(attributes: str = "") -> Dial:
    text = f"<Response><Dial {attributes}><Conference>r</Conference></Dial></Response>"
    return dial_of(parse(text))


def test_dial_defaults() -> None:
    verb = dial()
    assert verb.action is None
    assert verb.method is HttpMethod.POST
    assert verb.hangup_on_star is False
    assert verb.time_limit == 14400
    assert verb.record is DialRecord.DO_NOT_RECORD
    assert verb.caller_id is None
    assert verb.timeout == 30
    assert verb.answer_on_bridge is False
    assert verb.ring_tone is None
    assert verb.recording_status_callback is None
    assert verb.recording_status_callback_method is HttpMethod.POST
    assert verb.recording_status_callback_event == frozenset({RecordingEvent.COMPLETED})
    assert verb.recording_track is RecordingTrack.BOTH
    assert verb.trim is Trim.DO_NOT_TRIM
    assert verb.sequential is False
    assert verb.refer_url is None
    assert verb.refer_method is HttpMethod.POST
    assert verb.conference.room == "r"


DIAL_VALID = [
    ("action", "after", "action", "https://app.example.com/voice/after"),
    ("action", "", "action", None),
    ("method", "GET", "method", HttpMethod.GET),
    ("hangupOnStar", "TRUE", "hangup_on_star", True),
    ("timeLimit", "30", "time_limit", 30),
    ("timeLimit", "86400", "time_limit", 86400),
    ("record", "record-from-answer", "record", DialRecord.RECORD_FROM_ANSWER),
    ("record", "record-from-ringing-dual", "record", DialRecord.RECORD_FROM_RINGING_DUAL),
    ("record", "true", "record", DialRecord.TRUE),
    ("callerId", "+14155550100", "caller_id", "+14155550100"),
    ("timeout", "5", "timeout", 5),
    ("answerOnBridge", "true", "answer_on_bridge", True),
    ("ringTone", "uk", "ring_tone", "uk"),
    ("ringTone", "us-old", "ring_tone", "us-old"),
    ("recordingStatusCallback", "/rec", "recording_status_callback", "https://app.example.com/rec"),
    ("recordingStatusCallbackMethod", "GET", "recording_status_callback_method", HttpMethod.GET),
    ("recordingStatusCallbackEvent", "in-progress", "recording_status_callback_event",
     frozenset({RecordingEvent.IN_PROGRESS})),
    ("recordingTrack", "inbound", "recording_track", RecordingTrack.INBOUND),
    ("recordingConfigurationId", "JY1", "recording_configuration_id", "JY1"),
    ("trim", "trim-silence", "trim", Trim.TRIM_SILENCE),
    ("sequential", "true", "sequential", True),
    ("referUrl", "refer", "refer_url", "https://app.example.com/voice/refer"),
    ("referMethod", "GET", "refer_method", HttpMethod.GET),
    ("events", "call-progress-event", "events", "call-progress-event"),
    ("passports", "abc", "passports", "abc"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "field", "expected"), DIAL_VALID)
def test_dial_valid_value(name: str, raw: str, field: str, expected: object) -> None:
    assert getattr(dial(f'{name}="{raw}"'), field) == expected


def test_every_dial_attribute_is_exercised() -> None:
    assert {name for name, *_ in DIAL_VALID} == set(DIAL_DEFAULTS)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("method", "PUT"),
        ("hangupOnStar", "yes"),
        ("timeLimit", "0"),
        ("timeLimit", "-30"),
        ("timeLimit", "86401"),
        ("timeLimit", "1" * 400),
        ("record", "record-from-start"),
        ("timeout", "-1"),
        ("timeout", "abc"),
        ("answerOnBridge", "1"),
        ("ringTone", "UK;"),
        ("recordingTrack", "all"),
        ("trim", "yes"),
        ("sequential", "2"),
        ("callerId", "+1&#10;Evil: header"),
        ("callerId", "x&#0;"),
        ("action", "javascript:x"),
        ("referMethod", "HEAD"),
    ],
)
def test_dial_bad_values(name: str, raw: str) -> None:
    text = f'<Response><Dial {name}="{raw}"><Conference>r</Conference></Dial></Response>'
    refused(text, 12100 if "&#0;" in raw else 12200)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<Dial/>", "exactly one"),
        ("<Dial></Dial>", "exactly one"),
        ("<Dial>+14155550100</Dial>", "not supported by fsconf"),
        ("<Dial><Conference>a</Conference><Conference>b</Conference></Dial>", "exactly one"),
        ("<Dial><Number>+1415</Number></Dial>", "not supported by fsconf"),
        ("<Dial><Client>bob</Client><Conference>a</Conference></Dial>", "not supported by fsconf"),
        ("<Dial><Sip>sip:a@b</Sip></Dial>", "not supported by fsconf"),
        ("<Dial><Queue>q</Queue></Dial>", "not supported by fsconf"),
        ("<Dial><Dial><Conference>a</Conference></Dial></Dial>", "not a <Dial> noun"),
        ("<Dial><Foo/></Dial>", "not a <Dial> noun"),
        ("<Dial><Conference>a</Conference>tail</Dial>", "unexpected text"),
        ("<Conference>a</Conference>", "must be inside <Dial>"),
        ('<Dial foo="1"><Conference>a</Conference></Dial>', "unknown attribute"),
    ],
)
def test_dial_nesting(text: str, fragment: str) -> None:
    error = refused(f"<Response>{text}</Response>", 12200)
    assert fragment in error.reason


def test_verbs_after_dial_are_kept() -> None:
    response = parse(
        "<Response><Dial><Conference>r</Conference></Dial><Say>bye</Say><Hangup/></Response>"
    )
    assert [type(verb) for verb in response.verbs] == [Dial, Say, Hangup]


# --- Restricted (wait/hold/announce) documents --------------------------------------


def test_restricted_allows_the_wait_verbs() -> None:
    response = parse(
        "<Response><Play>a.mp3</Play><Say>wait</Say><Pause/><Redirect>again</Redirect></Response>",
        restricted=True,
    )
    assert [type(verb) for verb in response.verbs] == [Play, Say, Pause, Redirect]


@pytest.mark.parametrize(
    "text",
    ["<Dial><Conference>r</Conference></Dial>", "<Hangup/>", "<Reject/>"],
)
def test_restricted_refuses_other_verbs(text: str) -> None:
    error = refused(f"<Response><Say>x</Say>{text}</Response>", 12200, restricted=True)
    assert "not allowed in a wait" in error.reason


@pytest.mark.parametrize("tag", ["Gather", "Record"])
def test_restricted_refuses_unsupported_verbs(tag: str) -> None:
    refused(f"<Response><{tag}/></Response>", 12200, restricted=True)
