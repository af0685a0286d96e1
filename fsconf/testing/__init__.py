"""FakeSwitch: a FreeSWITCH stand-in speaking real ESL (tests, ``fsconf demo``).

The API is the contract in ``tests/fakeswitch/NOTES_FROM_CONFORMANCE.md``.
"""

from fsconf.testing.dialplan import Conference, Silent, Socket, Talk
from fsconf.testing.fakeswitch import Channel, FakeSwitch, RecordedCommand

__all__ = ["Channel", "Conference", "FakeSwitch", "RecordedCommand", "Silent", "Socket", "Talk"]
