"""classify_response: what an HTTP answer means, by status and Content-Type."""

from __future__ import annotations

import pytest

from fsconf.errors import TwimlError
from fsconf.twiml import Audio, Response, Say, classify_response
from tests.twiml.support import DOC_URL

TWIML = b"<Response><Say>hi</Say></Response>"


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "application/xml", "text/html", "TEXT/XML", "text/xml; charset=utf-8",
     "application/xml;charset=\"UTF-8\""],
)  # fmt: skip
def test_xml_types_are_parsed(content_type: str) -> None:
    result = classify_response(200, content_type, TWIML, DOC_URL)
    assert result == Response(verbs=(Say("hi", None, None, 1, line=1),), url=DOC_URL, line=1)


@pytest.mark.parametrize(
    "content_type",
    ["audio/mpeg", "audio/mp3", "audio/wav", "audio/wave", "audio/x-wav", "audio/aiff",
     "audio/x-aifc", "audio/x-aiff", "audio/x-gsm", "audio/gsm", "audio/ulaw",
     "Audio/MPEG; foo=bar"],
)  # fmt: skip
def test_audio_types(content_type: str) -> None:
    body = b"\xff\xfb" * 100_000  # larger than the TwiML cap: audio is not capped
    result = classify_response(200, content_type, body, DOC_URL)
    assert result == Audio(url=DOC_URL, media_type=content_type.split(";")[0].lower())


def test_plain_text_is_spoken() -> None:
    result = classify_response(200, "text/plain; charset=utf-8", "  Olá!\n".encode(), DOC_URL)
    assert result == Response(verbs=(Say("Olá!", None, None, 1, line=1),), url=DOC_URL, line=1)


def test_plain_text_with_another_charset() -> None:
    result = classify_response(200, "text/plain; charset=latin-1", "Olá".encode("latin-1"), DOC_URL)
    assert isinstance(result, Response)
    assert result.verbs == (Say("Olá", None, None, 1, line=1),)


def test_empty_plain_text_is_an_empty_document() -> None:
    assert classify_response(200, "text/plain", b"  ", DOC_URL) == Response((), DOC_URL, 1)


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("text/plain", b"\xff\xfe\xfd", 12100),
        ("text/plain; charset=no-such-charset", b"x", 12300),
        ("text/plain", b"a\x00b", 12200),
        ("text/plain", b"x" * 5000, 12200),
        ("text/plain", b"x" * 70_000, 11750),
    ],
)
def test_plain_text_refusals(content_type: str, body: bytes, code: int) -> None:
    with pytest.raises(TwimlError) as caught:
        classify_response(200, content_type, body, DOC_URL)
    assert caught.value.code == code


@pytest.mark.parametrize("status", [100, 199, 301, 404, 500, 503])
def test_non_2xx_is_a_retrieval_failure(status: int) -> None:
    with pytest.raises(TwimlError) as caught:
        classify_response(status, "text/xml", TWIML, DOC_URL)
    assert caught.value.code == 11200
    assert caught.value.url == DOC_URL
    assert str(status) in caught.value.reason


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/json", "image/png", "video/mp4", "application/octet-stream",
     "text/xmlx", "application/xhtml+xml"],
)  # fmt: skip
def test_other_types_are_invalid(content_type: str | None) -> None:
    with pytest.raises(TwimlError) as caught:
        classify_response(200, content_type, TWIML, DOC_URL)
    assert caught.value.code == 12300


def test_restricted_and_cap_are_passed_through() -> None:
    body = b"<Response><Hangup/></Response>"
    with pytest.raises(TwimlError) as caught:
        classify_response(200, "text/xml", body, DOC_URL, restricted=True)
    assert caught.value.code == 12200
    with pytest.raises(TwimlError) as caught:
        classify_response(200, "text/xml", body, DOC_URL, max_bytes=5)
    assert caught.value.code == 11750


def test_2xx_other_than_200_is_accepted() -> None:
    assert isinstance(classify_response(201, "text/xml", TWIML, DOC_URL), Response)
