"""Helpers for hostile input through the whole stack (FakeSwitch + fsconf + the app).

:func:`run_calls` places many calls at once, each fetching its own document
from the customer application, and waits (on the FakeSwitch's state and the
database, bounded in time) until each call is either hung up or seated in a
conference.  :func:`switch_text` is every byte fsconf sent to FreeSWITCH, for
the "no raw input in any command" scans.
"""

from __future__ import annotations

import json
import time
import uuid as uuid_module
from collections.abc import Iterable
from dataclasses import dataclass, field

from click.testing import CliRunner
from sqlalchemy import select

from fsconf.cli import cli
from fsconf.demo import Stack
from fsconf.store import models

ERROR_TEXT = "We are sorry, an application error has occurred. Goodbye."


@dataclass
class Placed:
    """One call and what became of it."""

    key: str
    path: str
    call_sid: str
    uuid: str
    started: float
    connection: str | None = None
    finished: float | None = None
    hung_up: bool = False
    seated: bool = False
    apps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        assert self.finished is not None
        return self.finished - self.started


def place(
    stack: Stack, key: str, body: str, *, caller: str = "+15551230001", name: str = "Hostile"
) -> Placed:
    path = f"/hostile/{uuid_module.uuid4().hex}"
    stack.customer.documents[path] = body
    started = time.monotonic()
    call_sid = stack.call(path, caller=caller, name=name)
    return watch(stack, Placed(key, path, call_sid, str(uuid_module.UUID(call_sid[2:])), started))


def watch(stack: Stack, call: Placed) -> Placed:
    """Learn the call's outbound ESL connection (its commands are read by name)."""
    channel = stack.switch.channels[call.uuid]
    stack.switch.wait_until(lambda: channel.connection is not None, timeout=5)
    assert channel.connection is not None
    call.connection = channel.connection.name
    return call


def _seated(stack: Stack, call_sids: Iterable[str]) -> set[str]:
    wanted = list(call_sids)
    if not wanted:
        return set()
    with stack.app.sessions() as session:
        return set(
            session.scalars(
                select(models.Participant.call_sid).where(models.Participant.call_sid.in_(wanted))
            )
        )


def settle(stack: Stack, calls: list[Placed], timeout: float = 30.0) -> None:
    """Wait until every call is hung up or has a participant row."""
    deadline = time.monotonic() + timeout
    next_query = 0.0

    def done() -> bool:
        nonlocal next_query
        now = time.monotonic()
        open_calls = []
        for call in calls:
            channel = stack.switch.channels.get(call.uuid)
            if channel is not None and call.connection is None and channel.connection is not None:
                call.connection = channel.connection.name
            if call.finished is None:
                # place_call() creates the channel at once, so a channel the
                # switch no longer lists was hung up and destroyed.
                if channel is None or channel.hungup:
                    call.hung_up = True
                    call.finished = now
                else:
                    open_calls.append(call)
        if open_calls and now >= next_query:
            # The database is asked at most every 50 ms, not on every poll.
            next_query = now + 0.05
            seated = _seated(stack, [c.call_sid for c in open_calls])
            for call in open_calls:
                if call.call_sid in seated and call.finished is None:
                    call.seated = True
                    call.finished = now
        return all(call.finished is not None for call in calls)

    try:
        stack.switch.wait_until(done, timeout=max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        stuck = [
            (
                call.key,
                call.call_sid,
                [
                    c.command.headers.get("execute-app-name") or c.command.line
                    for c in stack.switch.commands
                    if c.connection == call.connection
                ],
            )
            for call in calls
            if call.finished is None
        ]
        raise AssertionError(
            f"{len(stuck)} calls neither hung up nor seated in {timeout}s: {stuck}"
        ) from None
    for call in calls:
        call.apps = [
            (
                str(
                    c.command.headers.get("execute-app-name")
                    or c.command.headers.get("call-command")
                ),
                c.command.body or "",
            )
            for c in stack.switch.commands
            if c.connection == call.connection and c.command.verb == "sendmsg"
        ]


def hang_up(stack: Stack, calls: Iterable[Placed]) -> None:
    for call in calls:
        channel = stack.switch.channels.get(call.uuid)
        if channel is not None and not channel.hungup:
            stack.switch.hangup(call.uuid)


def switch_text(stack: Stack, since: int = 0) -> str:
    """Every command line, header and body fsconf sent to FreeSWITCH (from ``since`` on)."""
    parts = []
    for recorded in stack.switch.commands[since:]:
        command = recorded.command
        parts.append(command.line)
        parts.extend(f"{name}: {value}" for name, value in command.headers.items())
        parts.append(command.body or "")
    return "\n".join(parts)


def fsconf_json(db_url: str, *args: str) -> dict[str, object]:
    """Run ``fsconf <args> --json`` on the stack's database."""
    env = {
        "FSCONF_DATABASE_URL": db_url,
        "FSCONF_CONFIG": "",
        "FSCONF_ACCOUNT_SID": "",
        "FSCONF_AUTH_TOKEN": "",
    }
    result = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert isinstance(document, dict)
    return document


def alert_codes(db_url: str) -> dict[str, list[int]]:
    """``fsconf alerts list --json``: CallSid -> Twilio error codes."""
    codes: dict[str, list[int]] = {}
    alerts = fsconf_json(db_url, "alerts", "list")["alerts"]
    assert isinstance(alerts, list)
    for alert in alerts:
        codes.setdefault(str(alert["call_sid"]), []).append(int(alert["error_code"]))
    return codes
