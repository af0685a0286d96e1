"""A call keeps only its identity of the ``connect`` data while it runs.

FreeSWITCH's connect reply carries ~130 channel headers (about 6 KB per
call, held for the whole call: issue #6 §9). The call service reads what it
needs (From, To, the account, the voice URL, the node) before the first
request, then drops the rest; the call must behave exactly as before.
"""

from __future__ import annotations

from fsconf.calls.gateway import CallHandle
from fsconf.store import get_call, transaction
from tests.calls.conftest import Harness


def test_a_call_in_a_conference_holds_only_its_identity(harness: Harness) -> None:
    web = harness.web
    web.xml("/voice", "<Response><Dial><Conference>r</Conference></Dial></Response>")
    held: list[dict[str, str]] = []

    def behaviour(call: CallHandle) -> None:
        held.append(dict(call.session.channel_data))
        assert call.uuid  # the identity still answers while the call is in the room

    harness.gateway.behaviour = behaviour
    uuid = harness.call(web.url("/voice"))

    assert held == [{"Unique-ID": uuid, "variable_uuid": uuid}]
    # What the call needed from the connect data was read before it was dropped.
    [voice] = web.requests
    assert (voice.params["From"], voice.params["To"]) == ("+15551230001", "+15550000000")
    assert voice.params["CallSid"] == "CA" + uuid.replace("-", "")
    with transaction(harness.sessions) as db:  # type: ignore[arg-type]
        row = get_call(db, sid="CA" + uuid.replace("-", ""))
        assert row is not None
        assert (row.from_, row.to, row.status) == ("+15551230001", "+15550000000", "completed")
        assert row.node
