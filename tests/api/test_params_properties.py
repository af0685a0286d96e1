"""Properties of the parameter parsers: a value is accepted or refused with
:class:`ParameterError` (a 400 with Twilio's body), never anything else."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from fsconf.api import params
from fsconf.api.errors import ParameterError
from fsconf.api.paging import decode_token, encode_token

KEY_TYPES = (datetime, str)


def parse(parser, value, **kwargs):
    try:
        return ("ok", parser(MultiDict([("P", value)]), "P", **kwargs))
    except ParameterError as error:
        assert error.status == 400
        assert error.parameter == "P"
        return ("refused", error.code)


@given(st.text())
def test_boolean(value):
    outcome = parse(params.boolean, value)
    assert outcome[0] == "refused" or value.lower() in ("true", "false")


@given(st.text())
def test_url(value):
    outcome = parse(params.url, value)
    if outcome[0] == "ok":
        assert value.startswith(("http://", "https://"))
        assert not any(character.isspace() or ord(character) < 32 for character in value)
    else:
        assert outcome[1] == params.INVALID_URL


@given(st.text())
def test_integer(value):
    outcome = parse(params.integer, value, low=5, high=600, code=params.INVALID_TIMEOUT)
    assert outcome[0] == "refused" or 5 <= outcome[1] <= 600


@given(st.text())
def test_method(value):
    outcome = parse(params.method, value)
    assert outcome in (("ok", "GET"), ("ok", "POST"), ("refused", params.INVALID_METHOD))


@given(st.text(max_size=200))
def test_page_token_decodes_or_refuses(token):
    try:
        decoded = decode_token(token, KEY_TYPES)
    except ParameterError as error:
        assert error.status == 400
    else:
        assert len(decoded.values) == 2


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.text(max_size=34),
    st.booleans(),
)
def test_page_token_round_trip(moment, sid, backwards):
    token = encode_token((moment, sid), backwards=backwards)
    decoded = decode_token(token, KEY_TYPES)
    assert decoded.values == (moment, sid)
    assert decoded.backwards is backwards
