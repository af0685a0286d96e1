"""``<Dial><Conference>`` -> ParticipantSettings: equal documents share one object.

Every caller of an application sends the same document; its participants
share one immutable settings object (memory per participant) whose values
are exactly what each document asked for.
"""

from __future__ import annotations

from fsconf.conference.model import HttpMethod, StatusCallbackToken
from fsconf.service.adapt import participant_settings
from fsconf.twiml import Conference, Dial
from fsconf.twiml.parser import parse_twiml

URL = "https://app.example/voice"


def dial_of(document: str) -> tuple[Dial, Conference]:
    [dial] = parse_twiml(document.encode(), url=URL).verbs
    assert isinstance(dial, Dial) and isinstance(dial.conference, Conference)
    return dial, dial.conference


DOCUMENT = (
    '<Response><Dial action="/left" timeLimit="30"><Conference statusCallback="/events" '
    'statusCallbackEvent="start end join leave" muted="true">room</Conference></Dial></Response>'
)


def test_equal_documents_share_one_settings_object_with_their_values() -> None:
    first = participant_settings(*dial_of(DOCUMENT))
    second = participant_settings(*dial_of(DOCUMENT))

    assert second is first
    assert first.muted and first.time_limit == 30
    assert first.action == "https://app.example/left"
    assert first.status_callback == "https://app.example/events"
    assert first.status_callback_event == frozenset(
        {
            StatusCallbackToken.START,
            StatusCallbackToken.END,
            StatusCallbackToken.JOIN,
            StatusCallbackToken.LEAVE,
        }
    )


def test_a_different_document_gets_its_own_values() -> None:
    shared = participant_settings(*dial_of(DOCUMENT))
    other = participant_settings(
        *dial_of(DOCUMENT.replace('timeLimit="30"', 'timeLimit="31" method="GET"'))
    )

    assert other is not shared
    assert (other.time_limit, other.method) == (31, HttpMethod.GET)
    assert (shared.time_limit, shared.method) == (30, HttpMethod.POST)
