"""The whole gevent hub stalls for longer than a command's timeout.

This is what SQLite does to fsconf when another process holds the database's
write lock: its busy handler waits (up to the busy timeout) inside C, and no
greenlet runs meanwhile. A reply that FreeSWITCH sent during the stall is in
the socket when the hub wakes up, together with the command's expired timer;
libev runs the timer first. fsconf must still take the reply, not drop the
connection (for an outbound session that drop is the call).

The stall is the fault injected here: an unpatched ``time.sleep`` blocks the
hub exactly as SQLite's busy handler does. The peer is the other end of a
socket pair, written by the test, so the reply is in the socket before the
stall starts.
"""

from __future__ import annotations

import socket

import gevent
import pytest
from gevent import monkey

from fsconf.errors import EslTimeout
from fsconf.esl.frames import ApiResponse
from fsconf.esl.transport import EslConnection

blocking_sleep = monkey.get_original("time", "sleep")

REPLY = b"Content-Type: api/response\nContent-Length: 3\n\n+OK"


def test_a_reply_received_during_a_hub_stall_is_taken_not_timed_out():
    ours, peer = socket.socketpair()
    connection = EslConnection.accept(ours, label="stall", on_frame=lambda frame: None)

    def stall() -> None:
        peer.sendall(REPLY)  # FreeSWITCH answered...
        blocking_sleep(0.5)  # ...while the hub was stuck in C, past the timeout

    try:
        gevent.spawn(stall)
        reply = connection.request(b"api status\n\n", timeout=0.2)
        assert isinstance(reply, ApiResponse)
        assert reply.body == "+OK"
        assert connection.connected
        assert peer.recv(64) == b"api status\n\n"
    finally:
        connection.close()
        peer.close()


def test_a_reply_that_never_comes_still_times_out():
    ours, peer = socket.socketpair()
    connection = EslConnection.accept(ours, label="silent", on_frame=lambda frame: None)
    try:
        gevent.spawn(blocking_sleep, 0.3)
        with pytest.raises(EslTimeout):
            connection.request(b"api status\n\n", timeout=0.1)
        assert not connection.connected
    finally:
        connection.close()
        peer.close()
