"""The outbound server only talks to the FreeSWITCH hosts it is told about."""

import gevent
import gevent.event
import gevent.socket

from fsconf.config import load_settings
from fsconf.esl.outbound import OutboundServer
from fsconf.service.app import outbound_peers


def test_a_peer_not_allowed_is_closed_before_any_command():
    handled = gevent.event.Event()
    server = OutboundServer(
        ("127.0.0.1", 0), lambda session: handled.set(), allowed_peers=frozenset({"192.0.2.7"})
    )
    server.start()
    try:
        sock = gevent.socket.create_connection(server.address, timeout=5)
        sock.settimeout(5)
        assert sock.recv(1024) == b""  # closed at once: not even `connect` was sent
        sock.close()
        assert not handled.wait(0.2)
    finally:
        server.stop(timeout=1)


def test_an_allowed_peer_gets_the_connect_command():
    server = OutboundServer(
        ("127.0.0.1", 0), lambda session: session.connect(), allowed_peers=frozenset({"127.0.0.1"})
    )
    server.start()
    try:
        sock = gevent.socket.create_connection(server.address, timeout=5)
        sock.settimeout(5)
        assert sock.recv(1024).startswith(b"connect\n")
        sock.close()
    finally:
        server.stop(timeout=1)


def test_a_connect_reply_without_a_channel_uuid_is_refused():
    failures = []
    failed = gevent.event.Event()

    def handler(session):
        try:
            session.connect()
        except Exception as error:  # the session must refuse a bogus Unique-ID
            failures.append(error)
            failed.set()
            raise

    server = OutboundServer(("127.0.0.1", 0), handler)
    server.start()
    try:
        sock = gevent.socket.create_connection(server.address, timeout=5)
        sock.settimeout(5)
        assert sock.recv(1024).startswith(b"connect\n")
        sock.sendall(
            b"Event-Name: CHANNEL_DATA\nUnique-ID: ../../etc;kick all\n"
            b"Content-Type: command/reply\nReply-Text: %2BOK%0A\n\n"
        )
        assert failed.wait(5)
        assert "Unique-ID" in str(failures[0])
        sock.close()
    finally:
        server.stop(timeout=1)


def test_default_allowed_peers_are_the_esl_hosts_and_star_allows_all():
    assert outbound_peers(load_settings({"FSCONF_ESL": "127.0.0.1:8021:pw"})) == {"127.0.0.1"}
    assert outbound_peers(load_settings({"FSCONF_OUTBOUND_ALLOW": "*"})) is None
    peers = outbound_peers(load_settings({"FSCONF_OUTBOUND_ALLOW": "127.0.0.2, 127.0.0.3"}))
    assert peers == {"127.0.0.2", "127.0.0.3"}
