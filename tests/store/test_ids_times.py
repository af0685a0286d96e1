"""SIDs and dates: pure helpers, no database."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsconf.store.ids import (
    InvalidSidError,
    call_sid_from_uuid,
    is_sid,
    new_sid,
    uuid_from_call_sid,
)
from fsconf.store.times import format_rfc2822, parse_rfc2822

CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize("prefix", ["AC", "CF", "RE", "NO", "CA"])
def test_new_sid_is_prefix_and_32_lowercase_hex(prefix: str) -> None:
    sid = new_sid(prefix)
    assert re.fullmatch(prefix + r"[0-9a-f]{32}", sid)
    assert is_sid(sid, prefix)
    assert new_sid(prefix) != sid


def test_new_sid_refuses_unknown_prefix() -> None:
    with pytest.raises(InvalidSidError):
        new_sid("XX")


def test_call_sid_round_trips_a_channel_uuid() -> None:
    channel = "5f1a4c3e-9b2d-4e8f-a1b2-c3d4e5f60718"
    sid = call_sid_from_uuid(channel)
    assert sid == "CA5f1a4c3e9b2d4e8fa1b2c3d4e5f60718"
    assert uuid_from_call_sid(sid) == channel
    assert call_sid_from_uuid(channel.upper()) == sid
    assert call_sid_from_uuid(uuid.UUID(channel)) == sid


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "CA",
        "CA5f1a4c3e9b2d4e8fa1b2c3d4e5f6071",  # 31 digits
        "CA5f1a4c3e9b2d4e8fa1b2c3d4e5f607188",  # 33 digits
        "CA5F1A4C3E9B2D4E8FA1B2C3D4E5F60718",  # uppercase hex
        "ca5f1a4c3e9b2d4e8fa1b2c3d4e5f60718",
        "CF5f1a4c3e9b2d4e8fa1b2c3d4e5f60718",
        "CA5f1a4c3e9b2d4e8fa1b2c3d4e5f6071\n",
        "CA5f1a4c3e9b2d4e8fa1b2c3d4e5f607 8",
        "CA5f1a4c3e9b2d4e8fa1b2c3d4e5f6071g",
        "CA5f1a4c3e-9b2d-4e8f-a1b2-c3d4e5f60718",
    ],
)
def test_uuid_from_call_sid_is_strict(bad: str) -> None:
    with pytest.raises(InvalidSidError):
        uuid_from_call_sid(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "{5f1a4c3e-9b2d-4e8f-a1b2-c3d4e5f60718}",
        "urn:uuid:5f1a4c3e-9b2d-4e8f-a1b2-c3d4e5f60718",
        "5f1a4c3e9b2d4e8fa1b2c3d4e5f60718",
        "5f1a4c3e-9b2d-4e8f-a1b2-c3d4e5f60718\r\n",
        " 5f1a4c3e-9b2d-4e8f-a1b2-c3d4e5f60718",
    ],
)
def test_call_sid_from_uuid_refuses_other_spellings(bad: str) -> None:
    with pytest.raises(InvalidSidError):
        call_sid_from_uuid(bad)


def test_invalid_sid_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="CallSid"):
        uuid_from_call_sid("nope")


@given(st.uuids())
def test_round_trip_property(channel: uuid.UUID) -> None:
    sid = call_sid_from_uuid(str(channel))
    assert uuid_from_call_sid(sid) == str(channel)


@given(st.text(max_size=40))
def test_uuid_from_call_sid_returns_canonical_or_raises(text: str) -> None:
    try:
        result = uuid_from_call_sid(text)
    except InvalidSidError:
        return
    # Whatever passes is safe on an ESL command line.
    assert CANONICAL.fullmatch(result)
    assert call_sid_from_uuid(result) == text


def test_rfc2822_is_twilios_format() -> None:
    moment = datetime(2017, 6, 1, 20, 48, 32, 123456, tzinfo=UTC)
    assert format_rfc2822(moment) == "Thu, 01 Jun 2017 20:48:32 +0000"


def test_rfc2822_converts_other_zones_to_utc() -> None:
    moment = datetime(2017, 6, 1, 22, 48, 32, tzinfo=timezone(timedelta(hours=2)))
    assert format_rfc2822(moment) == "Thu, 01 Jun 2017 20:48:32 +0000"
    assert parse_rfc2822(format_rfc2822(moment)) == moment


def test_rfc2822_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_rfc2822(datetime(2017, 6, 1, 20, 48, 32))
