"""Helpers shared by the TwiML tests."""

from __future__ import annotations

import pytest

from fsconf.errors import TwimlError
from fsconf.twiml import Conference, Dial, Response, parse_twiml

DOC_URL = "https://app.example.com/voice/join.php"


def parse(text: str, *, restricted: bool = False) -> Response:
    return parse_twiml(text.encode("utf-8"), url=DOC_URL, restricted=restricted)


def refused(text: str | bytes, code: int, *, restricted: bool = False) -> TwimlError:
    """Parse ``text`` and return the TwimlError, failing if it parses."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    with pytest.raises(TwimlError) as caught:
        parse_twiml(data, url=DOC_URL, restricted=restricted)
    assert caught.value.code == code, caught.value
    assert caught.value.url == DOC_URL
    return caught.value


def conference_xml(attributes: str = "", room: str = "Room 1234") -> str:
    return f"<Response><Dial><Conference {attributes}>{room}</Conference></Dial></Response>"


def dial_of(response: Response) -> Dial:
    (dial,) = response.verbs
    assert isinstance(dial, Dial)
    return dial


def conference_of(text: str) -> Conference:
    return dial_of(parse(text)).conference
