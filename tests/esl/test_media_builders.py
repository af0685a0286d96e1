"""Golden tests for the playlist builders (hold/announce media from TwiML).

Each refusal is a case FreeSWITCH would misread: ``!`` splits a file_string
part, ``'`` closes the quoted api word, ``|`` splits a tts:// part, ``$``
expands a channel variable, a bare word is spoken by mod_conference.
"""

from __future__ import annotations

import pytest

from fsconf.errors import EslArgumentError
from fsconf.esl import commands

ROOM = "CF" + "0123456789abcdef" * 2


def freeswitch_words(line: str) -> list[str]:
    """Reference split of an api line (switch_utils.c separate_string_blank_delim)."""
    words: list[str] = []
    current: list[str] | None = None
    quoted = False
    for char in line:
        if char == "'":
            quoted = not quoted
            current = current if current is not None else []
        elif char == " " and not quoted:
            if current is not None:
                words.append("".join(current))
            current = None
        else:
            current = (current or []) + [char]
    assert not quoted, f"unbalanced quotes in {line!r}"
    if current is not None:
        words.append("".join(current))
    return words


# --- silence_media, tts_media, playlist_tts_text --------------------------------------------


def test_silence_media_golden() -> None:
    assert commands.silence_media(-1) == "silence_stream://-1"
    assert commands.silence_media(2000) == "silence_stream://2000"
    assert commands.silence_media(-1) == commands.SILENCE_FOREVER


@pytest.mark.parametrize("value", [0, -2, True, 86_400_001, "100", 1.5])
def test_silence_media_refuses(value: object) -> None:
    with pytest.raises(EslArgumentError):
        commands.silence_media(value)  # type: ignore[arg-type]


def test_tts_media_golden() -> None:
    assert commands.tts_media("flite", "kal", "Hello world") == "tts://flite|kal|Hello world"


@pytest.mark.parametrize(
    "text",
    ["Hi!", "don't", "a|b", "pay $5", "${x}", "{a=b}", "a\\b", "a\nb", "", " lead", "trail "],
)
def test_tts_media_refuses_unclean_text(text: str) -> None:
    with pytest.raises(EslArgumentError):
        commands.tts_media("flite", "kal", text)


@pytest.mark.parametrize(("engine", "voice"), [("fl ite", "kal"), ("flite", "k|al"), ("", "kal")])
def test_tts_media_refuses_engine_and_voice(engine: str, voice: str) -> None:
    with pytest.raises(EslArgumentError):
        commands.tts_media(engine, voice, "hello")


def test_playlist_tts_text_golden() -> None:
    hostile = "Pay $5 now! It's ${uuid_kill x}|{a=b}\\\r\n\tbye'"
    assert (
        commands.playlist_tts_text(hostile) == "Pay 5 dollars now. Its dollars uuid_kill x a=b bye"
    )
    assert commands.playlist_tts_text("!!!") == "..."
    assert commands.playlist_tts_text("''") == "."


# --- http_part, playlist_media ------------------------------------------------------------------


def test_http_part_encodes_the_playlist_separator() -> None:
    url = "http://a.example/b!c'd e$f{g}|h"
    assert commands.http_part(url) == "http_cache://http://a.example/b%21c%27d%20e%24f%7Bg%7D%7Ch"
    assert commands.http_part("http://a.example/x.mp3") == commands.http_media(
        "http://a.example/x.mp3"
    )


def test_playlist_media_golden() -> None:
    parts = [
        "tts://flite|slt|Please hold",
        "http_cache://http://a.example/m.mp3",
        "silence_stream://2000",
        "tone_stream://%(1000,500,440);loops=2",
        "/usr/share/sounds/x.wav",
        "silence_stream://-1",
    ]
    assert commands.playlist_media(parts) == (
        "file_string://tts://flite|slt|Please hold!http_cache://http://a.example/m.mp3"
        "!silence_stream://2000!tone_stream://%(1000,500,440);loops=2"
        "!/usr/share/sounds/x.wav!silence_stream://-1"
    )


@pytest.mark.parametrize(
    "part",
    [
        "hello",  # a bare word: spoken by mod_conference, sound_prefix'ed by file_string
        "http_cache://http://a/b!c",  # a raw separator
        "http_cache://http://a/b'c",  # closes the api quotes
        "http_cache://http://a/b c",  # a space outside TTS
        "http_cache://http://a/${x}",
        "file_string://a",  # no nesting
        "local_stream://moh",  # not a scheme fsconf plays (B10: fails silently)
        "tts://flite|kal|a!b",
        "tts://flite|kal|a'b",
        "tts://flite kal|x|y",
        "silence_stream://1\nkick all",
        "",
    ],
)
def test_playlist_media_refuses_parts(part: str) -> None:
    with pytest.raises(EslArgumentError):
        commands.playlist_media(["silence_stream://10", part])


def test_playlist_media_limits() -> None:
    with pytest.raises(EslArgumentError):
        commands.playlist_media([])
    many = ["silence_stream://10"] * (commands.PLAYLIST_MAX_PARTS + 1)
    with pytest.raises(EslArgumentError):
        commands.playlist_media(many)
    assert commands.playlist_media(many[:-1]).count("!") == commands.PLAYLIST_MAX_PARTS - 1
    long_text = "word " * 799 + "end"
    with pytest.raises(EslArgumentError):
        commands.playlist_media([commands.tts_media("flite", "kal", long_text)] * 3)


# --- media_word and the api commands --------------------------------------------------------------


def test_media_word_plain_media_unchanged() -> None:
    assert commands.media_word("tone_stream://%(1000,500,440);loops=-1") == (
        "tone_stream://%(1000,500,440);loops=-1"
    )
    assert commands.media_word("file_string://silence_stream://10!silence_stream://-1") == (
        "file_string://silence_stream://10!silence_stream://-1"
    )


def test_media_word_quotes_a_playlist_with_text() -> None:
    media = "file_string://tts://flite|kal|Please hold!silence_stream://-1"
    assert commands.media_word(media) == f"'{media}'"


@pytest.mark.parametrize(
    "media",
    [
        "file_string://tts://flite|kal|x' 7 kick all '",
        "file_string://hello world",
        "file_string://",
        "tts://flite|kal|not in a playlist",
        "http_cache://http://a/b c",
    ],
)
def test_media_word_refuses(media: str) -> None:
    with pytest.raises(EslArgumentError):
        commands.media_word(media)


def test_conference_hold_media_cmd_golden() -> None:
    media = (
        "file_string://tts://flite|kal|Please hold!http_cache://http://a/m.mp3!silence_stream://-1"
    )
    line = commands.conference_hold_media_cmd(ROOM, 7, media)
    assert line == f"conference {ROOM} hold 7 '{media}'"
    assert freeswitch_words(line) == ["conference", ROOM, "hold", "7", media]
    tone = "tone_stream://%(1000,500,440);loops=-1"
    assert commands.conference_hold_media_cmd(ROOM, 7, tone) == commands.conference_hold_cmd(
        ROOM, 7, tone
    )


def test_conference_play_media_cmd_golden() -> None:
    media = "file_string://tts://flite|kal|Hello there!silence_stream://500"
    variables = {"fsconf_announce": "AN" + "ab" * 16}
    line = commands.conference_play_media_cmd(ROOM, media, member_id=9, variables=variables)
    prefix = "{fsconf_announce=AN" + "ab" * 16 + "}"
    assert line == f"conference {ROOM} play '{prefix}{media}' 9"
    assert freeswitch_words(line) == ["conference", ROOM, "play", prefix + media, "9"]
    room_line = commands.conference_play_media_cmd(ROOM, media, variables=variables)
    assert freeswitch_words(room_line) == ["conference", ROOM, "play", prefix + media]


def test_conference_play_media_cmd_plain_media_as_before() -> None:
    media = commands.http_media("http://a.example/x.mp3")
    variables = {"fsconf_announce": "AN1"}
    assert commands.conference_play_media_cmd(
        ROOM, media, member_id=3, variables=variables
    ) == commands.conference_play_cmd(ROOM, media, member_id=3, variables=variables)
