"""resolve_media: a HoldUrl/AnnounceUrl answer -> the media FreeSWITCH plays (pure).

``fetch`` is a table of documents parsed by the real hardened parser; no
socket is opened. Every string checked here is what reaches ``hold <id>`` or
``play`` (through fsconf.esl.commands' validated builders).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pytest

from fsconf.calls.voices import TtsConfig, Voice
from fsconf.errors import TwimlError
from fsconf.esl import commands
from fsconf.service.media import MediaLimits, resolve_media
from fsconf.twiml import Audio, Response, parse_twiml

BASE = "http://app.example"
TAIL = "silence_stream://-1"
TTS = TtsConfig()


class Fetch:
    """``fetch(url, method)`` over a table: TwiML text, Audio, or a TwimlError to raise."""

    def __init__(self, table: Mapping[str, str | Audio | TwimlError]) -> None:
        self.table = table
        self.calls: list[tuple[str, str]] = []

    def __call__(self, url: str, method: str) -> Response | Audio:
        self.calls.append((url, method))
        answer = self.table[url]
        if isinstance(answer, TwimlError):
            raise answer
        if isinstance(answer, Audio):
            return answer
        return parse_twiml(answer.encode(), url=url, restricted=True)


def doc(*verbs: str) -> str:
    return "<Response>" + "".join(verbs) + "</Response>"


def parts_of(media: str) -> list[str]:
    assert media.startswith("file_string://"), media
    return media[len("file_string://") :].split("!")


def hold(table: Mapping[str, str | Audio | TwimlError], url: str = f"{BASE}/hold", **kw) -> str:
    return resolve_media(url, "GET", fetch=Fetch(table), tts=TTS, loop=True, **kw)


def announce(table: Mapping[str, str | Audio | TwimlError], url: str = f"{BASE}/a") -> str:
    return resolve_media(url, "POST", fetch=Fetch(table), tts=TTS, loop=False)


def assert_endless(media: str) -> list[str]:
    parts = parts_of(media)
    assert parts[-1] == TAIL, "a hold playlist never ends (B10: else the room is heard)"
    assert len(parts) <= commands.PLAYLIST_MAX_PARTS
    assert len(media) <= commands.PLAYLIST_MAX_CHARS
    assert commands.media_word(media)  # re-validated as it will be sent
    return parts[:-1]


# --- audio ------------------------------------------------------------------------------------


def test_audio_announcement_is_the_url_through_the_http_cache() -> None:
    table = {f"{BASE}/a": Audio(url=f"{BASE}/a.mp3", media_type="audio/mpeg")}
    assert announce(table) == f"http_cache://{BASE}/a.mp3"


def test_audio_hold_repeats_the_file_to_the_budget_then_endless_silence() -> None:
    table = {f"{BASE}/hold": Audio(url=f"{BASE}/music.mp3", media_type="audio/mpeg")}
    body = assert_endless(hold(table))
    assert set(body) == {f"http_cache://{BASE}/music.mp3"}
    # as many repeats as fit: one more would pass a budget
    assert len(body) == commands.PLAYLIST_MAX_PARTS - 1 or len(hold(table)) + len(body[0]) + 1 > (
        commands.PLAYLIST_MAX_CHARS
    )


# --- every verb ----------------------------------------------------------------------------------


def test_say_and_play_announcement_plays_once_in_order() -> None:
    table = {
        f"{BASE}/a": doc(
            '<Say voice="woman">Please hold</Say>',
            "<Play>/music.mp3</Play>",
        )
    }
    assert announce(table) == (
        f"file_string://tts://flite|slt|Please hold!http_cache://{BASE}/music.mp3"
    )


def test_loops_pause_and_voices() -> None:
    table = {
        f"{BASE}/a": doc(
            '<Play loop="3">/m.mp3</Play>',
            '<Pause length="2"/>',
            '<Pause length="0"/>',
            '<Say loop="2" voice="Polly.Matthew">Hi</Say>',
            '<Say language="fr-FR">Bonjour</Say>',
        )
    }
    tts = TtsConfig(languages=MappingProxyType({"fr": Voice("flite", "awb")}))
    media = resolve_media(f"{BASE}/a", "POST", fetch=Fetch(table), tts=tts, loop=False)
    assert parts_of(media) == [
        *[f"http_cache://{BASE}/m.mp3"] * 3,
        "silence_stream://2000",
        *["tts://flite|kal|Hi"] * 2,
        "tts://flite|awb|Bonjour",
    ]


def test_a_single_say_is_still_a_playlist() -> None:
    # tts:// with spaces cannot be a plain media word; file_string makes it one part
    table = {f"{BASE}/a": doc("<Say>Thank you for waiting</Say>")}
    assert announce(table) == "file_string://tts://flite|kal|Thank you for waiting"


def test_play_digits_only_plays_nothing() -> None:
    table = {f"{BASE}/a": doc('<Play digits="1234"/>', "<Say>x</Say>")}
    assert parts_of(announce(table)) == ["tts://flite|kal|x"]


def test_hold_document_cycles_until_the_budget() -> None:
    table = {f"{BASE}/hold": doc("<Say>Please hold</Say>", '<Pause length="5"/>')}
    body = assert_endless(hold(table))
    cycle = ["tts://flite|kal|Please hold", "silence_stream://5000"]
    assert len(body) == commands.PLAYLIST_MAX_PARTS - 1
    assert body == (cycle * 64)[: len(body)]


def test_endless_verb_is_unrolled_and_ends_the_document() -> None:
    table = {f"{BASE}/hold": doc('<Play loop="0">/m.mp3</Play>', "<Say>never reached</Say>")}
    body = assert_endless(hold(table))
    assert set(body) == {f"http_cache://{BASE}/m.mp3"}
    announced = parts_of(announce({f"{BASE}/a": table[f"{BASE}/hold"]}))
    assert set(announced) == {f"http_cache://{BASE}/m.mp3"}  # to the budget, then it ends
    assert TAIL not in announced


# --- empty documents ---------------------------------------------------------------------------


@pytest.mark.parametrize("document", [doc(), doc('<Pause length="0"/>')])
def test_a_document_that_plays_nothing_is_silence(document: str) -> None:
    assert hold({f"{BASE}/hold": document}) == TAIL
    assert announce({f"{BASE}/a": document}) == "silence_stream://100"


# --- Redirect ------------------------------------------------------------------------------------


def test_redirect_chain_back_to_the_start_closes_the_cycle() -> None:
    # twimlets' hold music: a few Plays, then a Redirect to itself
    table = {
        f"{BASE}/hold": doc("<Say>Please hold</Say>", '<Redirect method="GET">/more</Redirect>'),
        f"{BASE}/more": doc("<Play>/m1.mp3</Play>", "<Redirect>/hold</Redirect>"),
    }
    fetch = Fetch(table)
    media = resolve_media(f"{BASE}/hold", "GET", fetch=fetch, tts=TTS, loop=True)
    body = assert_endless(media)
    assert body[:4] == ["tts://flite|kal|Please hold", f"http_cache://{BASE}/m1.mp3"] * 2
    assert fetch.calls == [(f"{BASE}/hold", "GET"), (f"{BASE}/more", "GET")]


def test_redirect_chain_is_bounded() -> None:
    table = {f"{BASE}/d{n}": doc(f"<Say>part {n}</Say>", f"<Redirect>/d{n + 1}</Redirect>")
             for n in range(50)}  # fmt: skip
    fetch = Fetch(table)
    media = resolve_media(
        f"{BASE}/d0", "POST", fetch=fetch, tts=TTS, loop=False, limits=MediaLimits(max_documents=4)
    )
    assert parts_of(media) == [f"tts://flite|kal|part {n}" for n in range(4)]
    assert len(fetch.calls) == 4


def test_redirect_to_audio_ends_the_cycle() -> None:
    table = {
        f"{BASE}/a": doc("<Say>one</Say>", "<Redirect>/song</Redirect>"),
        f"{BASE}/song": Audio(url=f"{BASE}/song", media_type="audio/wav"),
    }
    assert parts_of(announce(table)) == ["tts://flite|kal|one", f"http_cache://{BASE}/song"]


def test_a_failing_redirect_keeps_what_was_collected() -> None:
    table = {
        f"{BASE}/hold": doc("<Say>one</Say>", "<Redirect>/gone</Redirect>"),
        f"{BASE}/gone": TwimlError(11200, "HTTP status 500", url=f"{BASE}/gone"),
    }
    assert set(assert_endless(hold(table))) == {"tts://flite|kal|one"}


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        TwimlError(11205, "connection refused", url=f"{BASE}/hold"),
        doc("<Dial>+15550001111</Dial>"),  # not allowed in hold/announce TwiML
        "<Response><Say>unclosed",
    ],
)
def test_a_failing_first_fetch_raises(answer: str | TwimlError) -> None:
    with pytest.raises(TwimlError):
        hold({f"{BASE}/hold": answer})
    with pytest.raises(TwimlError):
        announce({f"{BASE}/a": answer})


# --- hostile input -----------------------------------------------------------------------------


def test_hostile_say_text_reaches_freeswitch_only_as_clean_words() -> None:
    hostile = "Hi' 7\nconference CFx kick all ${uuid_kill x}|{a=b}!\\ bye"
    table = {f"{BASE}/hold": doc(f"<Say>{hostile}</Say>")}
    media = hold(table)
    [say, *_] = assert_endless(media)
    assert say == "tts://flite|kal|Hi 7 conference CFx kick all dollars uuid_kill x a=b . bye"
    room = "CF" + "0" * 32
    line = commands.conference_hold_media_cmd(room, 7, media)
    assert "\n" not in line and "$" not in line and "{" not in line
    assert line.count("'") == 2 and line.startswith(f"conference {room} hold 7 '")


def test_hostile_play_url_is_encoded_and_stays_one_part() -> None:
    evil = "/x!silence_stream://1'$%7B{a}|b c.mp3"
    table = {f"{BASE}/a": doc(f"<Play>{evil.replace('{', '%7B').replace('}', '%7D')}</Play>",
                              "<Say>end</Say>")}  # fmt: skip
    parts = parts_of(announce(table))
    assert len(parts) == 2 and parts[1] == "tts://flite|kal|end"
    assert parts[0].startswith(f"http_cache://{BASE}/x%21silence_stream://1%27%24")
    assert not set("!'${}| ") & set(parts[0])
