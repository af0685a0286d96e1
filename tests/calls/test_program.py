"""The pure TwiML program, stepped by hand: no sockets, no clock."""

from __future__ import annotations

import pytest

from fsconf.calls.params import CallParams
from fsconf.calls.program import (
    Answer,
    CallerHungUp,
    Completed,
    Dialed,
    DialOutcome,
    Execute,
    Fetch,
    Fetched,
    FetchFailed,
    Finished,
    HangupCall,
    JoinConference,
    ProgramConfig,
    ProgramError,
    Purpose,
    RecordAlert,
    RejectCall,
    Step,
    advance,
    start,
)
from fsconf.calls.voices import TtsConfig, Voice
from fsconf.errors import TwimlError
from fsconf.twiml import Audio, parse_twiml

URL = "http://app.example/voice"
CALL = CallParams(account_sid="AC" + "1" * 32, call_sid="CA" + "2" * 32, from_="+1555", to="+1666")


def doc(body: str, url: str = URL):  # type: ignore[no-untyped-def]
    return Fetched(parse_twiml(f"<Response>{body}</Response>".encode(), url=url))


def run(body: str, results: dict[type, object] | None = None, config: ProgramConfig | None = None):  # type: ignore[no-untyped-def]
    """Run a one-document program with every step succeeding; the steps taken."""
    program, step = start(CALL, URL, "POST", config)
    steps: list[Step] = [step]
    program, step = advance(program, doc(body))
    steps.append(step)
    while not isinstance(step, Finished):
        assert not isinstance(step, Fetch), step
        assert not isinstance(step, JoinConference), step
        program, step = advance(program, Completed())
        steps.append(step)
    return steps


def params(step: Step) -> dict[str, str]:
    assert isinstance(step, Fetch)
    return dict(step.params)


def test_first_step_fetches_the_voice_url_ringing() -> None:
    _, step = start(CALL, URL, "get")
    assert isinstance(step, Fetch) and step.method == "GET" and step.purpose is Purpose.VOICE
    assert params(step) == {
        "AccountSid": CALL.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": CALL.call_sid,
        "CallStatus": "ringing",
        "Called": "+1666",
        "Caller": "+1555",
        "Direction": "inbound",
        "From": "+1555",
        "To": "+1666",
    }


def test_say_answers_first_then_speaks_with_the_voice_table() -> None:
    steps = run('<Say voice="woman" loop="3">Hello ${x} | {y}</Say>')
    assert steps[1] == Answer()
    assert isinstance(steps[2], Execute) and steps[2].app == "speak" and steps[2].loops == 3
    assert steps[2].arg is not None and steps[2].arg.startswith("flite|slt|Hello")
    assert "$" not in steps[2].arg and "{" not in steps[2].arg
    assert steps[3:] == [HangupCall(), Finished("completed")]


@pytest.mark.parametrize(
    ("attributes", "voice"),
    [("", "kal"), ('voice="man"', "kal"), ('voice="alice"', "slt"),
     ('voice="Polly.Joanna"', "slt"), ('voice="Polly.Matthew-Neural"', "kal"),
     ('voice="Google.en-US-Standard-C"', "kal")],
)  # fmt: skip
def test_say_voices(attributes: str, voice: str) -> None:
    steps = run(f"<Say {attributes}>Hi</Say>")
    assert steps[2] == Execute("speak", f"flite|{voice}|Hi", 1)


def test_say_language_override() -> None:
    tts = TtsConfig(languages={"fr": Voice("tts_commandline", "fr1")})
    steps = run('<Say language="fr-FR">Bonjour</Say>', config=ProgramConfig(tts=tts))
    assert steps[2] == Execute("speak", "tts_commandline|fr1|Bonjour", 1)


def test_play_loop_and_digits() -> None:
    steps = run('<Play loop="0">http://media.example/a b.mp3</Play><Play digits="12w#"/>')
    assert steps[1:] == [
        Answer(),
        Execute("playback", "http_cache://http://media.example/a%20b.mp3", 0),
        Execute("send_dtmf", "12w#"),
        HangupCall(),
        Finished("completed"),
    ]


def test_pause_before_answer_waits_unanswered() -> None:
    steps = run('<Pause length="2"/><Pause length="0"/><Say>x</Say>')
    assert steps[1:4] == [Execute("sleep", "2000"), Answer(), Execute("speak", "flite|kal|x", 1)]


def test_hangup_and_end_of_document() -> None:
    assert run("<Hangup/><Say>never</Say>")[1:] == [HangupCall(), Finished("completed")]
    assert run("")[1:] == [HangupCall(), Finished("completed")]


@pytest.mark.parametrize(
    ("reason", "cause", "status"),
    [("", "CALL_REJECTED", "no-answer"), ('reason="busy"', "USER_BUSY", "busy")],
)
def test_reject_before_answer(reason: str, cause: str, status: str) -> None:
    assert run(f"<Reject {reason}/>")[1:] == [RejectCall(cause), Finished(status)]


def test_reject_after_answer_hangs_up() -> None:
    assert run("<Say>x</Say><Reject/>")[3:] == [HangupCall(), Finished("completed")]


def test_redirect_fetches_with_in_progress_after_answer() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(program, doc('<Say>x</Say><Redirect method="GET">/next</Redirect>'))
    program, step = advance(program, Completed())  # answer
    program, step = advance(program, Completed())  # speak
    assert isinstance(step, Fetch)
    assert (step.url, step.method, step.purpose) == (
        "http://app.example/next",
        "GET",
        Purpose.REDIRECT,
    )
    assert params(step)["CallStatus"] == "in-progress"
    program, step = advance(program, doc("<Hangup/>"))
    assert step == HangupCall()


def test_redirect_loop_is_capped_with_14106() -> None:
    program, step = start(CALL, URL, "POST", ProgramConfig(max_idle_documents=5))
    fetches = 1
    while isinstance(step, Fetch):
        program, step = advance(program, doc("<Redirect>/voice</Redirect>"))
        fetches += isinstance(step, Fetch)
    assert fetches == 5
    assert isinstance(step, RecordAlert) and step.code == 14106
    program, step = advance(program, Completed())
    assert step == Answer()
    program, step = advance(program, Completed())
    assert (
        isinstance(step, Execute)
        and step.app == "speak"
        and "application error" in (step.arg or "")
    )


def test_redirect_loop_with_a_pause_is_not_capped() -> None:
    program, step = start(CALL, URL, "POST", ProgramConfig(max_idle_documents=2))
    for _ in range(10):
        program, step = advance(program, doc('<Pause length="1"/><Redirect>/voice</Redirect>'))
        assert step == Execute("sleep", "1000")
        program, step = advance(program, Completed())
        assert isinstance(step, Fetch)


def test_audio_document_is_played_once() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(program, Fetched(Audio("http://app.example/a.wav", "audio/wav")))
    assert step == Answer()
    program, step = advance(program, Completed())
    assert step == Execute("playback", "http_cache://http://app.example/a.wav", 1)


def test_play_not_found_records_11200_and_continues() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(program, doc("<Play>http://m.example/x.wav</Play><Say>x</Say>"))
    program, step = advance(program, Completed())
    program, step = advance(program, Completed("FILE NOT FOUND"))
    assert isinstance(step, RecordAlert) and step.code == 11200
    program, step = advance(program, Completed())
    assert step == Execute("speak", "flite|kal|x", 1)


def test_fetch_error_without_fallback_speaks_and_hangs_up() -> None:
    program, _ = start(CALL, URL, "POST")
    error = TwimlError(11200, "HTTP status 500")
    program, step = advance(program, FetchFailed(error))
    assert step == RecordAlert(11200, "11200: HTTP status 500", URL)
    rest = []
    while not isinstance(step, Finished):
        program, step = advance(program, Completed())
        rest.append(step)
    assert rest[0] == Answer()
    assert isinstance(rest[1], Execute) and rest[1].app == "speak"
    assert rest[2:] == [HangupCall(), Finished("completed")]


def test_fetch_error_goes_to_the_fallback_once_with_error_code_and_url() -> None:
    config = ProgramConfig(fallback_url="http://app.example/fallback", fallback_method="GET")
    program, _ = start(CALL, URL, "POST", config)
    program, step = advance(program, FetchFailed(TwimlError(12100, "bad", url=URL)))
    assert isinstance(step, RecordAlert)
    program, step = advance(program, Completed())
    assert isinstance(step, Fetch) and step.purpose is Purpose.FALLBACK and step.method == "GET"
    assert params(step)["ErrorCode"] == "12100" and params(step)["ErrorUrl"] == URL
    program, step = advance(program, FetchFailed(TwimlError(11200, "again")))
    assert isinstance(step, RecordAlert) and step.url == "http://app.example/fallback"
    program, step = advance(program, Completed())
    assert step == Answer()  # no second fallback: the spoken error


def test_dial_with_action_requests_it_with_dial_call_status() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(
        program,
        doc('<Dial action="/after" method="GET"><Conference>room</Conference></Dial><Say>no</Say>'),
    )
    assert step == Answer()
    program, step = advance(program, Completed())
    assert isinstance(step, JoinConference) and step.dial.conference.room == "room"
    program, step = advance(program, Dialed(DialOutcome("completed", params=(("X", "1"),))))
    assert isinstance(step, Fetch) and step.purpose is Purpose.ACTION and step.method == "GET"
    assert step.url == "http://app.example/after"
    p = params(step)
    assert p["DialCallStatus"] == "completed" and p["X"] == "1" and p["CallStatus"] == "in-progress"
    assert "DialCallSid" not in p and "DialCallDuration" not in p
    program, step = advance(program, doc("<Say>after</Say>"))
    assert step == Execute("speak", "flite|kal|after", 1)


def test_dial_without_action_continues() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(program, doc("<Dial><Conference>r</Conference></Dial><Say>next</Say>"))
    program, step = advance(program, Completed())
    program, step = advance(program, Dialed(DialOutcome()))
    assert step == Execute("speak", "flite|kal|next", 1)


def test_dial_no_action_request_when_gateway_says_so() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(
        program, doc('<Dial action="/a"><Conference>r</Conference></Dial><Hangup/>')
    )
    program, step = advance(program, Completed())
    program, step = advance(program, Dialed(DialOutcome("failed", request_action=False)))
    assert step == HangupCall()


def test_caller_hangup_in_the_room_still_requests_the_action_and_ignores_it() -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(program, doc('<Dial action="/a"><Conference>r</Conference></Dial>'))
    program, step = advance(program, Completed())
    program, step = advance(program, Dialed(DialOutcome(hung_up=True)))
    assert isinstance(step, Fetch) and step.purpose is Purpose.ACTION_AFTER_HANGUP
    assert params(step)["CallStatus"] == "completed"
    program, step = advance(program, doc("<Say>ignored</Say>"))
    assert step == Finished("completed")
    with pytest.raises(ProgramError):
        advance(program, Completed())


@pytest.mark.parametrize(("answered", "status"), [(False, "no-answer"), (True, "completed")])
def test_caller_hangup_anywhere_finishes(answered: bool, status: str) -> None:
    program, _ = start(CALL, URL, "POST")
    program, step = advance(program, doc("<Say>x</Say>"))
    if answered:
        program, step = advance(program, Completed())
    program, step = advance(program, CallerHungUp())
    assert step == Finished(status)


def test_wrong_result_for_the_step_is_refused() -> None:
    program, _ = start(CALL, URL, "POST")
    with pytest.raises(ProgramError):
        advance(program, Completed())
