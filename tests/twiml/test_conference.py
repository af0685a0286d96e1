"""<Conference>: every attribute of spec/twiml-conference.txt, its default, its bad values."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from fsconf.twiml import (
    Beep,
    ConferenceEvent,
    ConferenceRecord,
    HttpMethod,
    JitterBufferSize,
    RecordingEvent,
    Region,
    Trim,
)
from fsconf.twiml.verbs import CONFERENCE_DEFAULTS
from tests.twiml.support import conference_of, conference_xml, refused

SID = "CA" + "0123456789abcdef" * 2

# The attribute table of spec/twiml-conference.txt, transcribed: (name,
# allowed values, default) exactly as the page prints them.
SPEC_TABLE = [
    ("muted", "true, false", "false"),
    ("beep", "true, false, onEnter, onExit", "true"),
    ("startConferenceOnEnter", "true, false", "true"),
    ("endConferenceOnExit", "true, false", "false"),
    ("participantLabel", "a label for the conference participant", "None"),
    ("jitterBufferSize", "small, medium, large, off", "large"),
    ("waitUrl", "TwiML URL, empty string", "default Twilio hold music"),
    ("waitMethod", "GET or POST", "POST"),
    ("maxParticipants", "positive integer <= 250", "250"),
    ("record", "do-not-record or record-from-start", "do-not-record"),
    ("region", "us1, ie1, de1, sg1, br1, au1, jp1", "None"),
    ("trim", "trim-silence or do-not-trim", "trim-silence"),
    ("coach", "A Call SID", "none"),
    ("statusCallbackEvent", "start end join leave mute hold modify speaker announcement", "None"),
    ("statusCallback", "relative or absolute URL", "None"),
    ("statusCallbackMethod", "GET, POST", "POST"),
    ("recordingStatusCallback", "relative or absolute URL", "None"),
    ("recordingStatusCallbackMethod", "GET, POST", "POST"),
    ("recordingStatusCallbackEvent", "in-progress, completed, absent", "completed"),
    ("eventCallbackUrl", "relative or absolute URL", "None"),
]
# Spec defaults that mean "the attribute is absent" rather than a value.
ABSENT = {"None", "none", "default Twilio hold music"}
SPEC_FILE = Path("/work/shared/spec/twiml-conference.txt")


def test_transcription_matches_the_spec_file() -> None:
    if not SPEC_FILE.exists():
        pytest.skip("spec file not available here")
    lines = set(SPEC_FILE.read_text(encoding="utf-8").splitlines())
    for name, allowed, default in SPEC_TABLE:
        # The page's table cells are printed glued together on one line.
        assert name + allowed + default in lines, name


@pytest.mark.parametrize(("name", "allowed", "default"), SPEC_TABLE)
def test_defaults_table_equals_the_spec(name: str, allowed: str, default: str) -> None:
    expected = None if default in ABSENT else default
    assert CONFERENCE_DEFAULTS[name] == expected


def test_defaults_table_has_every_spec_attribute_and_only_known_extras() -> None:
    extras = set(CONFERENCE_DEFAULTS) - {name for name, _, _ in SPEC_TABLE}
    # recordingConfigurationId is emitted by the twilio helper library.
    assert extras == {"recordingConfigurationId"}


def test_defaults_when_no_attribute_is_given() -> None:
    conference = conference_of(conference_xml())
    assert conference.room == "Room 1234"
    assert conference.muted is False
    assert conference.beep is Beep.TRUE
    assert conference.start_conference_on_enter is True
    assert conference.end_conference_on_exit is False
    assert conference.participant_label is None
    assert conference.jitter_buffer_size is JitterBufferSize.LARGE
    assert conference.wait_url is None  # the default hold music
    assert conference.wait_method is HttpMethod.POST
    assert conference.max_participants == 250
    assert conference.record is ConferenceRecord.DO_NOT_RECORD
    assert conference.region is None
    assert conference.trim is Trim.TRIM_SILENCE
    assert conference.coach is None
    assert conference.status_callback_event is None
    assert conference.status_callback is None
    assert conference.status_callback_method is HttpMethod.POST
    assert conference.recording_status_callback is None
    assert conference.recording_status_callback_method is HttpMethod.POST
    assert conference.recording_status_callback_event == frozenset({RecordingEvent.COMPLETED})
    assert conference.event_callback_url is None
    assert conference.recording_configuration_id is None
    assert conference.line == 1


VALID = [
    ("muted", "true", "muted", True),
    ("muted", "false", "muted", False),
    ("beep", "true", "beep", Beep.TRUE),
    ("beep", "false", "beep", Beep.FALSE),
    ("beep", "onEnter", "beep", Beep.ON_ENTER),
    ("beep", "onExit", "beep", Beep.ON_EXIT),
    ("startConferenceOnEnter", "false", "start_conference_on_enter", False),
    ("endConferenceOnExit", "true", "end_conference_on_exit", True),
    ("participantLabel", "agent-1", "participant_label", "agent-1"),
    ("participantLabel", "x" * 128, "participant_label", "x" * 128),
    ("participantLabel", "", "participant_label", None),
    ("jitterBufferSize", "small", "jitter_buffer_size", JitterBufferSize.SMALL),
    ("jitterBufferSize", "medium", "jitter_buffer_size", JitterBufferSize.MEDIUM),
    ("jitterBufferSize", "large", "jitter_buffer_size", JitterBufferSize.LARGE),
    ("jitterBufferSize", "off", "jitter_buffer_size", JitterBufferSize.OFF),
    ("waitUrl", "", "wait_url", ""),
    ("waitUrl", "  ", "wait_url", ""),
    ("waitUrl", "https://music.example.com/hold.mp3", "wait_url", "https://music.example.com/hold.mp3"),
    ("waitUrl", "hold.xml", "wait_url", "https://app.example.com/voice/hold.xml"),
    ("waitMethod", "GET", "wait_method", HttpMethod.GET),
    ("waitMethod", "POST", "wait_method", HttpMethod.POST),
    ("maxParticipants", "1", "max_participants", 1),
    ("maxParticipants", "2", "max_participants", 2),
    ("maxParticipants", "250", "max_participants", 250),
    ("record", "do-not-record", "record", ConferenceRecord.DO_NOT_RECORD),
    ("record", "record-from-start", "record", ConferenceRecord.RECORD_FROM_START),
    ("trim", "trim-silence", "trim", Trim.TRIM_SILENCE),
    ("trim", "do-not-trim", "trim", Trim.DO_NOT_TRIM),
    ("coach", SID, "coach", SID),
    ("statusCallbackEvent", "start", "status_callback_event", frozenset({ConferenceEvent.START})),
    ("statusCallbackEvent", "", "status_callback_event", frozenset()),
    ("statusCallbackEvent", "start  end   join", "status_callback_event",
     frozenset({ConferenceEvent.START, ConferenceEvent.END, ConferenceEvent.JOIN})),
    ("statusCallbackEvent", "start,end", "status_callback_event",
     frozenset({ConferenceEvent.START, ConferenceEvent.END})),
    ("statusCallback", "https://myapp.com/events", "status_callback", "https://myapp.com/events"),
    ("statusCallback", "/events", "status_callback", "https://app.example.com/events"),
    ("statusCallback", "", "status_callback", None),
    ("statusCallbackMethod", "GET", "status_callback_method", HttpMethod.GET),
    ("recordingStatusCallback", "rec", "recording_status_callback",
     "https://app.example.com/voice/rec"),
    ("recordingStatusCallbackMethod", "GET", "recording_status_callback_method", HttpMethod.GET),
    ("recordingStatusCallbackEvent", "in-progress completed absent",
     "recording_status_callback_event", frozenset(RecordingEvent)),
    ("recordingStatusCallbackEvent", "absent", "recording_status_callback_event",
     frozenset({RecordingEvent.ABSENT})),
    ("eventCallbackUrl", "http://other.example.com/e", "event_callback_url",
     "http://other.example.com/e"),
    ("recordingConfigurationId", "JY123", "recording_configuration_id", "JY123"),
] + [("region", region.value, "region", region) for region in Region] + [
    ("statusCallbackEvent", event.value, "status_callback_event", frozenset({event}))
    for event in ConferenceEvent
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "field", "expected"), VALID)
def test_valid_value(name: str, raw: str, field: str, expected: object) -> None:
    conference = conference_of(conference_xml(f"{name}={quoteattr(raw)}"))
    assert getattr(conference, field) == expected
    assert type(getattr(conference, field)) is type(expected)


def test_all_events_at_once() -> None:
    raw = "start end join leave mute hold modify speaker announcement"
    conference = conference_of(conference_xml(f'statusCallbackEvent="{raw}"'))
    assert conference.status_callback_event == frozenset(ConferenceEvent)


BOOLEANS = ["muted", "startConferenceOnEnter", "endConferenceOnExit"]


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("True", True), ("false", False), ("FALSE", False)],
)
def test_booleans_are_case_insensitive(name: str, raw: str, expected: bool) -> None:
    conference = conference_of(conference_xml(f'{name}="{raw}"'))
    fields = {
        "muted": conference.muted,
        "startConferenceOnEnter": conference.start_conference_on_enter,
        "endConferenceOnExit": conference.end_conference_on_exit,
    }
    assert fields[name] is expected


@pytest.mark.parametrize(("raw", "expected"), [("TRUE", Beep.TRUE), ("False", Beep.FALSE)])
def test_beep_booleans_are_case_insensitive(raw: str, expected: Beep) -> None:
    assert conference_of(conference_xml(f'beep="{raw}"')).beep is expected


@pytest.mark.parametrize("raw", ["get", "Post"])
def test_methods_are_case_insensitive(raw: str) -> None:
    conference = conference_of(conference_xml(f'waitMethod="{raw}"'))
    assert conference.wait_method is HttpMethod(raw.upper())


BAD = {
    "muted": ["yes", "1", "", "on", "truee"],
    "beep": ["yes", "on-enter", "onenterx", ""],
    "startConferenceOnEnter": ["no", "0"],
    "endConferenceOnExit": ["maybe", ""],
    "participantLabel": ["x" * 129, "x" * 10_000, "a&#10;b", "a&#13;b", "a&#127;b"],
    "jitterBufferSize": ["huge", "LARGE", "", "20"],
    "waitUrl": ["ftp://music.example.com/a.mp3", "javascript:alert(1)", "mailto:a@b.c"],
    "waitMethod": ["PUT", "DELETE", "", "GETT"],
    "maxParticipants": ["0", "251", "-1", "abc", "1.5", "1e2", "+5", "99999999999999999999", ""],
    "record": ["true", "record-from-answer", "RECORD-FROM-START", ""],
    "region": ["us2", "US1", "eu1", ""],
    "trim": ["trim", "TRIM-SILENCE", ""],
    "coach": ["CA123", "PA" + "0" * 32, "CA" + "A" * 32, "CA" + "g" * 32, "", "CA" + "0" * 33],
    "statusCallbackEvent": ["start stop", "participant-join", "START"],
    "statusCallback": ["ftp://x.example.com/", "file:///etc/passwd", "http://[::1/x"],
    "statusCallbackMethod": ["PUT"],
    "recordingStatusCallback": ["gopher://x/"],
    "recordingStatusCallbackMethod": ["PATCH"],
    "recordingStatusCallbackEvent": ["done", "completed failed", "COMPLETED"],
    "eventCallbackUrl": ["data:text/plain,hi", "x" * 10_000],
}


@pytest.mark.parametrize(("name", "raw"), [(name, raw) for name, bad in BAD.items() for raw in bad])
def test_bad_value_is_refused_with_context(name: str, raw: str) -> None:
    # Raw text, not quoteattr: some cases are character references on purpose.
    error = refused(conference_xml(f'{name}="{raw}"'), 12200)
    assert error.element == "Conference"
    assert error.line == 1
    assert error.reason.startswith(f"{name}:")


def test_every_attribute_has_bad_values_tested() -> None:
    assert set(BAD) == {name for name, _, _ in SPEC_TABLE}


def test_unknown_attribute_is_refused() -> None:
    error = refused(conference_xml('mutted="true"'), 12200)
    assert "unknown attribute 'mutted'" in error.reason


def test_attribute_names_are_case_sensitive() -> None:
    refused(conference_xml('Muted="true"'), 12200)


@pytest.mark.parametrize(
    ("room", "expected"),
    [
        ("Room 1234", "Room 1234"),
        ("\n        moderated-conference-room\n    ", "moderated-conference-room"),
        ("Sala de reunião 会议室 🎉", "Sala de reunião 会议室 🎉"),
        ("a'b\"c;d|e", "a'b\"c;d|e"),
        ("<![CDATA[x & y]]>", "x & y"),
        ("x" * 128, "x" * 128),
    ],
)
def test_room_name(room: str, expected: str) -> None:
    assert conference_of(conference_xml(room=room)).room == expected


@pytest.mark.parametrize(
    "room", ["", "   \n  ", "x" * 129, "x" * 10_000, "a&#10;b", "a&#127;b", "a&#133;b"]
)
def test_bad_room_name(room: str) -> None:
    error = refused(conference_xml(room=room), 12200)
    assert error.element == "Conference"


def test_conference_has_no_children() -> None:
    refused("<Response><Dial><Conference>a<Say>x</Say></Conference></Dial></Response>", 12200)


def test_error_line_points_at_the_element() -> None:
    text = (
        "<Response>\n  <Dial>\n\n    <Conference beep='loud'>\n"
        "      x\n    </Conference>\n  </Dial>\n</Response>"
    )
    error = refused(text, 12200)
    assert (error.element, error.line) == ("Conference", 4)
