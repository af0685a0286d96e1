"""The signature and the request bytes, checked by Twilio's own validator."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from fsconf.webhooks.signing import (
    FORM_CONTENT_TYPE,
    SIGNATURE_HEADER,
    USER_AGENT,
    build_request,
    compute_signature,
    signature_payload,
)

TOKEN = "12345"
PARAMS = [
    ("ConferenceSid", "CFe08c870b500f6e44a9ad184defd1f391"),
    ("FriendlyName", "Room 1234 & co/é"),
    ("AccountSid", "AC25e16e9a716a4a8617a7c83f58e30482"),
    ("SequenceNumber", "1"),
    ("Timestamp", "Thu, 01 Jun 2017 20:48:32 +0000"),
    ("StatusCallbackEvent", "participant-join"),
    ("CallSid", "CA25e16e9a716a4a1786a7c83f58e30482"),
    ("Muted", "false"),
]


def test_post_signature_validates_with_twilio() -> None:
    url = "https://app.example.com/status?conf=1&x=y"
    final, headers, body = build_request(url, "POST", PARAMS, TOKEN)
    assert final == url
    assert body is not None
    received = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
    assert received == dict(PARAMS)
    assert RequestValidator(TOKEN).validate(final, received, headers[SIGNATURE_HEADER])
    assert not RequestValidator("other").validate(final, received, headers[SIGNATURE_HEADER])
    tampered = {**received, "Muted": "true"}
    assert not RequestValidator(TOKEN).validate(final, tampered, headers[SIGNATURE_HEADER])


def test_post_headers_and_body() -> None:
    _url, headers, body = build_request("http://h/p", "post", [("B", "x y"), ("A", "é")], TOKEN)
    assert headers["Content-Type"] == FORM_CONTENT_TYPE
    assert headers["User-Agent"] == USER_AGENT == "TwilioProxy/1.1"
    assert headers["Accept"] == "*/*"
    assert body == b"B=x+y&A=%C3%A9"  # order kept; UTF-8 form encoding
    assert TOKEN not in repr(headers)


def test_get_puts_params_in_the_query_and_signs_the_url_only() -> None:
    url = "https://app.example.com/status?existing=1"
    final, headers, body = build_request(url, "GET", PARAMS, TOKEN)
    assert body is None
    assert "Content-Type" not in headers
    parts = urlsplit(final)
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert query[0] == ("existing", "1")
    assert query[1:] == PARAMS
    assert headers[SIGNATURE_HEADER] == compute_signature(TOKEN, final)
    assert RequestValidator(TOKEN).validate(final, {}, headers[SIGNATURE_HEADER])


def test_get_without_existing_query_and_fragment_dropped() -> None:
    final, headers, _body = build_request("http://h:8080/s#frag", "GET", [("A", "1")], TOKEN)
    assert final == "http://h:8080/s?A=1"
    assert RequestValidator(TOKEN).validate(final, {}, headers[SIGNATURE_HEADER])


def test_payload_sorts_by_name() -> None:
    # Sorted by name ("A" < "AB"), not by the concatenated string ("ABc" < "Az").
    assert signature_payload("u", [("AB", "c"), ("A", "z")]) == "uAzABc"
    assert signature_payload("u", {"b": "2", "a": "1"}) == "ua1b2"
    assert signature_payload("u", None) == "u"


def test_known_vector() -> None:
    # HMAC-SHA1 of "https://example.com/cbA1B2" with key "12345", computed independently.
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(b"12345", b"https://example.com/cbA1B2", hashlib.sha1).digest()
    ).decode()
    assert compute_signature("12345", "https://example.com/cb", {"B": "2", "A": "1"}) == expected


@pytest.mark.parametrize(
    ("url", "method"),
    [
        ("ftp://h/x", "POST"),
        ("/relative", "POST"),
        ("http://h/x\r\nInjected: 1", "POST"),
        ("http://h/x", "PUT"),
    ],
)
def test_build_request_refuses(url: str, method: str) -> None:
    with pytest.raises(ValueError):
        build_request(url, method, [], TOKEN)


def test_params_must_be_strings() -> None:
    with pytest.raises(TypeError):
        build_request("http://h/x", "POST", [("A", 1)], TOKEN)  # type: ignore[list-item]


_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)
_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]))


@given(
    st.dictionaries(_names, _values, max_size=8),
    st.text(min_size=1, max_size=20),
    st.sampled_from(["POST", "GET"]),
)
def test_any_params_validate_with_twilio(params: dict[str, str], token: str, method: str) -> None:
    final, headers, body = build_request("https://h.example/cb?z=1", method, params, token)
    validator = RequestValidator(token)
    if method == "POST":
        assert body is not None
        received = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
        assert received == params
        assert validator.validate(final, received, headers[SIGNATURE_HEADER])
    else:
        assert validator.validate(final, {}, headers[SIGNATURE_HEADER])


@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
            st.text(st.characters(blacklist_categories=["Cs"]), max_size=24),
        ),
        max_size=8,
    )
)
def test_the_form_body_and_get_query_are_urlencode_byte_for_byte(
    pairs: list[tuple[str, str]],
) -> None:
    _url, _headers, body = build_request("https://a.example/x", "POST", pairs, TOKEN)
    assert body == urlencode(pairs).encode("ascii")
    final, headers, _body = build_request("https://a.example/x?k=v", "GET", pairs, TOKEN)
    assert final == "https://a.example/x?" + "&".join(p for p in ("k=v", urlencode(pairs)) if p)
    assert headers[SIGNATURE_HEADER] == compute_signature(TOKEN, final)
