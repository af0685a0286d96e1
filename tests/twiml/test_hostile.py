"""Hostile documents: XXE, entity bombs, DTDs, size, depth, junk, and a fuzz property."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsconf.errors import TwimlError
from fsconf.twiml import Response, parse_twiml
from fsconf.twiml.verbs import CONFERENCE_DEFAULTS, DIAL_DEFAULTS, SAY_DEFAULTS
from tests.twiml.support import DOC_URL, conference_of, conference_xml, refused


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that records whether anybody connected to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def assert_nobody_connected(server: socket.socket) -> None:
    # The parse is synchronous C code: a fetch would have completed its TCP
    # handshake (into the backlog) before parse_twiml returned.
    with pytest.raises(BlockingIOError):
        server.accept()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-7f3a")
    return path


def assert_not_leaked(error: TwimlError, secret: str) -> None:
    assert secret not in str(error)
    assert secret not in error.reason


def test_xxe_file(secret_file: Path) -> None:
    for target in ("file:///etc/passwd", secret_file.as_uri()):
        text = (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{target}">]>'
            "<Response><Say>&x;</Say></Response>"
        )
        error = refused(text, 12100)
        assert "DOCTYPE" in error.reason
        assert_not_leaked(error, "TOP-SECRET-7f3a")
        assert_not_leaked(error, "root:")


def test_xxe_in_attribute_and_room(secret_file: Path) -> None:
    text = (
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>'
        '<Response><Dial action="&x;"><Conference>&x;</Conference></Dial></Response>'
    )
    assert_not_leaked(refused(text, 12100), "TOP-SECRET-7f3a")


def test_xxe_http_never_touches_the_network(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    text = (
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'
        "<Response><Say>&x;</Say></Response>"
    )
    refused(text, 12100)
    assert_nobody_connected(listener)


def test_parameter_entity_and_external_dtd_never_fetched(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    for text in (
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]><Response/>',
        f'<!DOCTYPE Response SYSTEM "http://127.0.0.1:{port}/twiml.dtd"><Response/>',
        f'<!DOCTYPE Response PUBLIC "-//X//EN" "http://127.0.0.1:{port}/t.dtd"><Response/>',
    ):
        refused(text, 12100)
    assert_nobody_connected(listener)


def test_external_dtd_file(tmp_path: Path) -> None:
    dtd = tmp_path / "t.dtd"
    dtd.write_text('<!ENTITY greeting "LEAKED-FROM-DTD">')
    text = f'<!DOCTYPE Response SYSTEM "{dtd.as_uri()}"><Response><Say>&greeting;</Say></Response>'
    assert_not_leaked(refused(text, 12100), "LEAKED-FROM-DTD")


@pytest.mark.parametrize("doctype", ["<!DOCTYPE Response>", "<!DOCTYPE Response []>"])
def test_any_doctype_is_refused(doctype: str) -> None:
    refused(f"{doctype}<Response/>", 12100)


def test_billion_laughs_is_fast() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    text = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><Response><Say>&lol9;</Say></Response>'
    )
    started = time.perf_counter()
    refused(text, 12100)
    assert time.perf_counter() - started < 0.5


def test_undeclared_entity_is_a_parse_error() -> None:
    refused("<Response><Say>&nbsp;</Say></Response>", 12100)


def test_ten_megabytes_is_refused_before_parsing() -> None:
    data = b"<Response><Say>" + b"a" * (10 * 1024 * 1024) + b"</Say></Response>"
    started = time.perf_counter()
    error = refused(data, 11750)
    assert time.perf_counter() - started < 0.5
    assert "too large" in error.reason


def test_size_cap_boundary_and_configuration() -> None:
    document = b"<Response>" + b" " * (64 * 1024 - 21) + b"</Response>"
    assert len(document) == 64 * 1024
    assert parse_twiml(document, url=DOC_URL).verbs == ()
    with pytest.raises(TwimlError) as caught:
        parse_twiml(document + b" ", url=DOC_URL)
    assert caught.value.code == 11750
    with pytest.raises(TwimlError) as caught:
        parse_twiml(b"<Response/>", url=DOC_URL, max_bytes=10)
    assert caught.value.code == 11750


@pytest.mark.parametrize("tag", ["Response", "Say", "emphasis"])
def test_deep_nesting_fails_fast(tag: str) -> None:
    data = "<Response><Say>" + f"<{tag}>" * 5000 + f"</{tag}>" * 5000 + "</Say></Response>"
    started = time.perf_counter()
    # A raised cap, so that the depth limit (not the size cap) is what refuses it.
    with pytest.raises(TwimlError) as caught:
        parse_twiml(data.encode(), url=DOC_URL, max_bytes=1 << 20)
    assert time.perf_counter() - started < 0.5
    assert caught.value.code == 12100
    assert "depth" in caught.value.reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"not xml at all",
        b'{"Response": []}',
        b"<Response>",
        b"<Response></Respons>",
        b"<Response/><Response/>",
        b"<Response>\x00</Response>",
        b"<Response><Say>\xff\xfe</Say></Response>",
        b"<Response><Say>&#0;</Say></Response>",
        b'<Response><Say loop="&#1;">x</Say></Response>',
        b"<?xml version='1.0' encoding='bogus'?><Response/>",
        b"<x:Response xmlns:y='u'/>",
        b"<Response><amazon:effect>x</amazon:effect></Response>",
    ],
)
def test_junk_is_a_parse_error(data: bytes) -> None:
    refused(data, 12100)


@pytest.mark.parametrize(
    "attribute",
    [
        'participantLabel="a&#13;&#10;Evil: 1"',
        'participantLabel="a&#10;b"',
        'statusCallback="https://x.example.com/&#10;"',
        'waitUrl="https://x.example.com/a&#13;b"',
        'statusCallbackEvent="start&#10;end"',
        'muted="true&#9;"',
    ],
)
def test_cr_lf_tab_in_attributes_are_refused(attribute: str) -> None:
    error = refused(conference_xml(attribute), 12200)
    assert "control character" in error.reason


def test_literal_newlines_in_attributes_are_normalised_by_xml() -> None:
    # XML turns a literal newline in an attribute into a space: harmless.
    conference = conference_of(conference_xml('statusCallbackEvent="start\nend"'))
    assert conference.status_callback_event is not None
    assert len(conference.status_callback_event) == 2


def test_nul_in_attribute_is_a_parse_error() -> None:
    refused(conference_xml('participantLabel="a\x00b"'), 12100)


@pytest.mark.parametrize(
    "attribute",
    [
        f'participantLabel="{"x" * 10_000}"',
        f'statusCallback="https://x.example.com/{"a" * 10_000}"',
        f'waitUrl="{"a" * 10_000}"',
        f'region="{"a" * 10_000}"',
        f'unknownAttribute="{"a" * 10_000}"',
        f'{"a" * 10_000}="1"',
    ],
)
def test_ten_thousand_character_values(attribute: str) -> None:
    error = refused(conference_xml(attribute), 12200)
    assert len(error.reason) <= 300
    assert error.element is not None and len(error.element) <= 64


def test_ten_thousand_character_tag_name() -> None:
    error = refused(f"<Response><{'V' * 10_000}/></Response>", 12200)
    assert len(error.reason) <= 300
    assert error.element == "V" * 64


def test_unicode_room_names_are_allowed() -> None:
    room = "Комната 会议室 غرفة 🎉 "
    assert conference_of(conference_xml(room=room)).room == room.strip()


def test_utf16_document_with_bom() -> None:
    data = conference_xml(room="Zimmer ü").encode("utf-16")
    response = parse_twiml(data, url=DOC_URL)
    assert response.verbs


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("maxParticipants", "-1"),
        ("maxParticipants", "-0"),
        ("maxParticipants", "99999999999999999999999999"),
        ("maxParticipants", "1" * 5000),
        ("maxParticipants", "٣"),  # an Arabic-Indic digit: int() would accept it
        ("maxParticipants", "\uff11\uff10"),  # fullwidth digits
        ("maxParticipants", "0x10"),
        ("maxParticipants", "1_0"),
    ],
)
def test_negative_huge_and_exotic_numbers(attribute: str, value: str) -> None:
    refused(conference_xml(f'{attribute}="{value}"'), 12200)


# --- Property: parses or raises TwimlError, never anything else ----------------------


def outcome(data: bytes, *, restricted: bool = False) -> None:
    try:
        result = parse_twiml(data, url=DOC_URL, restricted=restricted)
    except TwimlError as error:
        assert error.code in (11750, 12100, 12200)
        assert error.url == DOC_URL
    else:
        assert isinstance(result, Response)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.booleans())
def test_arbitrary_bytes(data: bytes, restricted: bool) -> None:
    outcome(data, restricted=restricted)


TAGS = ["Response", "Say", "Play", "Pause", "Redirect", "Hangup", "Reject", "Dial",
        "Conference", "Number", "Gather", "break", "emphasis", "Foo"]  # fmt: skip
ATTRIBUTES = sorted({*CONFERENCE_DEFAULTS, *DIAL_DEFAULTS, *SAY_DEFAULTS, "length", "reason"})
VALUES = st.one_of(
    st.sampled_from(["true", "FALSE", "", "0", "250", "251", "-1", "GET", "onEnter", "/x",
                     "ftp://x", "start end", "CA" + "0" * 32, "large", "us1", "&#10;"]),
    st.text(max_size=20).map(lambda text: text.replace("&", "&amp;").replace('"', "&quot;")
                             .replace("<", "&lt;")),
)  # fmt: skip


@st.composite
def twiml_like(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    names = draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=3, unique=True))
    attributes = "".join(f' {name}="{draw(VALUES)}"' for name in names)
    children = ""
    if depth < 3:
        children = "".join(draw(st.lists(twiml_like(depth + 1), max_size=3)))
    text = draw(st.sampled_from(["", "Room 1", " a.mp3 ", "\n", "x&amp;y"]))
    return f"<{tag}{attributes}>{text}{children}</{tag}>"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(twiml_like(), max_size=3), st.booleans())
def test_twiml_like_documents(verbs: list[str], restricted: bool) -> None:
    outcome(f"<Response>{''.join(verbs)}</Response>".encode(), restricted=restricted)
