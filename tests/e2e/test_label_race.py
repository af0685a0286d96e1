"""A label taken by a dial-out that is still ringing (its row exists, the engine
does not know it yet): the database refuses the TwiML caller's row. The caller
must get Twilio's answer (16025, next verb), and the room must not keep a
phantom participant that the database never stored."""

from __future__ import annotations

from twilio.rest import Client

from fsconf.demo import running_stack
from fsconf.store import models
from tests.e2e.support import twiml


class Ringing:
    """A dialplan target that never answers: the dial-out stays ringing."""

    def apps(self):  # type: ignore[no-untyped-def]
        return [("park", "")]


def test_a_label_held_by_a_ringing_dial_out_refuses_the_caller_cleanly(db_url):
    with running_stack(db_url) as stack:
        stack.switch.dialplan["+15550002222"] = Ringing()
        client = Client(stack.account_sid, stack.auth_token)
        host, port = stack.app.http_address
        client.api.base_url = f"http://{host}:{port}"
        dialled = client.conferences("Room").participants.create(
            from_="+15550001111",
            to="+15550002222",
            label="agent",
            timeout=30,
            start_conference_on_enter=False,
        )
        assert dialled.status == "queued"
        customer = stack.customer
        customer.documents["/voice"] = twiml(
            "Room", events_url=customer.url("/events"), participant_label="agent"
        ).replace("</Response>", "<Say>next verb</Say></Response>")
        caller = stack.call("/voice", caller="+15551230001", name="Agent")

        def refused() -> bool:
            with stack.app.sessions() as session:
                return (
                    session.query(models.Alert)
                    .filter_by(call_sid=caller, error_code=16025)
                    .count()
                    == 1
                )

        stack.switch.wait_until(refused, timeout=10)  # raises TimeoutError if not
        # The call went on with its next verb (Twilio's rule for 16025).
        stack.switch.wait_until(
            lambda: any(
                c.command.headers.get("execute-app-name") == "speak"
                and "next verb" in (c.command.body or "")
                for c in stack.switch.commands
            ),
            timeout=10,
        )
        for room in stack.app.conferences.rooms.values():
            assert caller not in {p.call_sid for p in room.state.participants}
            assert caller not in room.outcomes and caller not in room.calls
