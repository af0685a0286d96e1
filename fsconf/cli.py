"""``fsconf``: the command line that ops runbooks script.

Exit codes: 0 ok, 1 failure, 2 usage (click's own code for bad usage).
Every command reads the same ``FSCONF_*`` environment as ``fsconf serve``.

Theory of operation
-------------------
* **Listings read the database directly** (``FSCONF_DATABASE_URL``), so they
  work whether or not ``fsconf serve`` runs.  ``--json`` prints one stable
  document (see :mod:`fsconf.ops.output`: Twilio-style snake_case keys, dates
  in ISO 8601 UTC); text output is an aligned table.
* **Actions go through the running server's REST API** (``FSCONF_HTTP_LISTEN``),
  as the conference's own account: the server owns the conference engine, and
  a second process sending FreeSWITCH commands would race it
  (:mod:`fsconf.ops.actions`).
* CONFERENCE is a ConferenceSid or a friendly name, PARTICIPANT a CallSid or a
  label (:mod:`fsconf.ops.resolve`).
* Any :class:`~fsconf.errors.FsconfError` a command raises leaves as
  ``Error: <message>`` on stderr and exit code 1, under :func:`main` and under
  click's test runner alike.  Secrets are never printed: auth tokens only once,
  by ``accounts create``; ESL passwords never.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fsconf import __version__
from fsconf.config import Settings, load_settings
from fsconf.errors import FsconfError, StoreError
from fsconf.ops import output
from fsconf.ops.actions import ApiClient, server_url
from fsconf.ops.resolve import ResolveError, resolve_conference, resolve_participant
from fsconf.store import repositories as repo
from fsconf.store.db import describe_error, make_engine, make_session_factory, transaction
from fsconf.store.ids import is_sid
from fsconf.store.models import CONFERENCE_STATUSES, Conference, Participant

MIGRATE_HINT = "is the database migrated? run `fsconf db upgrade`"


class CommandError(click.ClickException):
    """A failure to report as ``Error: ...`` with exit code 1."""

    exit_code = 1


class Context:
    """What every command gets: the settings and the database, opened lazily."""

    def __init__(self, config_file: str | None) -> None:
        self._config_file = config_file
        self._settings: Settings | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_file=self._config_file)
        return self._settings

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._engine = make_engine(self.settings.database_url)
            self._sessions = make_session_factory(self._engine)
        return self._sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; a missing table gets the "run db upgrade" hint."""
        try:
            with transaction(self.sessions) as session:
                yield session
        except StoreError as error:
            if self._schema_is_behind():
                raise CommandError(f"{error} ({MIGRATE_HINT})") from error
            raise

    def _schema_is_behind(self) -> bool:
        from fsconf.store.migrate import pending

        try:
            return pending(self.settings.database_url)
        except (SQLAlchemyError, FsconfError):
            return False

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None


class FsconfGroup(click.Group):
    """Turns fsconf's own errors into exit code 1 with a one-line message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FsconfError as error:
            raise CommandError(str(error)) from error


pass_context = click.make_pass_decorator(Context)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON document (ISO 8601 UTC dates)."
)


def echo_json(document: object) -> None:
    click.echo(output.to_json(document))


@click.group(cls=FsconfGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fsconf")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="FSCONF_CONFIG",
    help="INI file with a [fsconf] section (the environment wins over it).",
)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """Run Twilio <Dial><Conference> applications on your own FreeSWITCH."""
    ctx.obj = Context(config_file)
    ctx.call_on_close(ctx.obj.close)


# --- db -----------------------------------------------------------------------------


@cli.group(cls=FsconfGroup)
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Migrate the database (FSCONF_DATABASE_URL) to the newest schema."""
    from fsconf.ops.doctor import redact_url
    from fsconf.store.migrate import current, upgrade

    url = context.settings.database_url
    try:
        upgrade(url)
        revision = current(url)
    except SQLAlchemyError as error:
        raise CommandError(describe_error(error)) from error
    click.echo(f"database {redact_url(url)} is at revision {revision}")


# --- accounts -------------------------------------------------------------------------


@cli.group(cls=FsconfGroup)
def accounts() -> None:
    """Accounts (AccountSid + AuthToken, as on Twilio)."""


def _account_sid(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not is_sid(value, "AC"):
        raise click.BadParameter("must be AC followed by 32 lowercase hex digits")
    return value


def _auth_token(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value == "-":
        value = sys.stdin.readline().strip()
    if value is not None and (
        not value or not value.isprintable() or any(c.isspace() for c in value)
    ):
        raise click.BadParameter("must be non-empty, without spaces or control characters")
    return value


@accounts.command("create")
@click.option("--friendly-name", default="", help="A name for people.")
@click.option(
    "--sid", callback=_account_sid, help="Keep an existing AccountSid (with --auth-token)."
)
@click.option(
    "--auth-token",
    callback=_auth_token,
    help="Keep an existing AuthToken (with --sid); '-' reads it from stdin.",
)
@json_option
@pass_context
def accounts_create(
    context: Context, friendly_name: str, sid: str | None, auth_token: str | None, as_json: bool
) -> None:
    """Create an account; prints its SID and auth token (the only time the token is shown)."""
    if (sid is None) != (auth_token is None):
        raise click.UsageError("--sid and --auth-token go together")
    token = auth_token or secrets.token_hex(16)
    with context.session() as session:
        if sid is not None and repo.get_account(session, sid=sid) is not None:
            raise CommandError(f"account {sid} already exists")
        row = repo.create_account(session, sid=sid, auth_token=token, friendly_name=friendly_name)
    if as_json:
        echo_json(output.new_account(row))
        return
    click.echo(f"AccountSid: {row.sid}")
    click.echo(f"AuthToken:  {row.auth_token}")
    click.echo("The auth token is shown only now: store it safely.", err=True)


@accounts.command("list")
@json_option
@pass_context
def accounts_list(context: Context, as_json: bool) -> None:
    """Every account (never their tokens)."""
    with context.session() as session:
        rows = repo.list_accounts(session)
    if as_json:
        echo_json({"accounts": [output.account(row) for row in rows]})
        return
    click.echo(
        output.table(
            ["SID", "FRIENDLY NAME", "STATUS", "CREATED"],
            [
                [row.sid, row.friendly_name, row.status, output.iso8601(row.date_created)]
                for row in rows
            ],
        )
    )


# --- conferences ----------------------------------------------------------------------


@cli.group(cls=FsconfGroup)
def conferences() -> None:
    """Conferences (CONFERENCE: a ConferenceSid or a friendly name)."""


def _resolve_conference(context: Context, session: Session, value: str) -> Conference:
    return resolve_conference(session, value, default_account_sid=context.settings.account_sid)


@conferences.command("list")
@click.option("--status", type=click.Choice(CONFERENCE_STATUSES), help="Only this status.")
@click.option("--account", "account_sid", help="Only this AccountSid.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N, newest first.")
@json_option
@pass_context
def conferences_list(
    context: Context, status: str | None, account_sid: str | None, limit: int | None, as_json: bool
) -> None:
    """Conferences of every account, newest first."""
    with context.session() as session:
        rows = repo.list_conferences(session, account_sid=account_sid, status=status, limit=limit)
        counts = {
            row.sid: repo.count_present_participants(session, conference_sid=row.sid)
            for row in rows
        }
    if as_json:
        echo_json(
            {
                "conferences": [
                    output.conference(row, participant_count=counts[row.sid]) for row in rows
                ]
            }
        )
        return
    click.echo(
        output.table(
            ["SID", "FRIENDLY NAME", "STATUS", "PARTICIPANTS", "CREATED", "ACCOUNT"],
            [
                [
                    row.sid,
                    row.friendly_name,
                    row.status,
                    counts[row.sid],
                    output.iso8601(row.date_created),
                    row.account_sid,
                ]
                for row in rows
            ],
        )
    )


PARTICIPANT_HEADERS = ["CALL SID", "LABEL", "STATUS", "MUTED", "HOLD", "COACHING", "JOINED"]


def _participant_row(row: Participant) -> list[object]:
    return [
        row.call_sid,
        row.label,
        row.status,
        row.muted,
        row.hold,
        row.coaching,
        output.iso8601(row.date_created),
    ]


@conferences.command("show")
@click.argument("conference")
@json_option
@pass_context
def conferences_show(context: Context, conference: str, as_json: bool) -> None:
    """One conference and its participants (including those who left)."""
    with context.session() as session:
        row = _resolve_conference(context, session, conference)
        members = repo.list_participants(session, conference_sid=row.sid, present_only=False)
        present = sum(1 for member in members if member.present)
    if as_json:
        document = output.conference(row, participant_count=present)
        document["participants"] = [output.participant(member) for member in members]
        echo_json(document)
        return
    fields = [
        ("sid", row.sid),
        ("friendly_name", row.friendly_name),
        ("account_sid", row.account_sid),
        ("status", row.status),
        ("region", row.region),
        ("date_created", output.iso8601(row.date_created)),
        ("start_time", output.iso8601(row.start_time)),
        ("end_time", output.iso8601(row.end_time)),
        ("reason_conference_ended", row.reason_ended),
        ("participant_count", present),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"{name.ljust(width)}  {output.cell(value)}")
    click.echo("")
    click.echo(output.table(PARTICIPANT_HEADERS, [_participant_row(m) for m in members]))


def _client(context: Context, session: Session, conference: Conference) -> ApiClient:
    account = repo.get_account(session, sid=conference.account_sid)
    if account is None:
        raise CommandError(f"account {conference.account_sid} of {conference.sid} not found")
    host, port = context.settings.http_listen
    return ApiClient(server_url(host, port), account.sid, account.auth_token)


@conferences.command("end")
@click.argument("conference")
@pass_context
def conferences_end(context: Context, conference: str) -> None:
    """End a conference: every participant continues to its <Dial> action."""
    with context.session() as session:
        row = _resolve_conference(context, session, conference)
        if row.status == "completed":
            raise CommandError(f"conference {row.sid} ({row.friendly_name!r}) already ended")
        client = _client(context, session, row)
    client.end_conference(row.sid)
    click.echo(f"conference {row.sid} ({row.friendly_name!r}) ended")


# --- participants ---------------------------------------------------------------------


@cli.group(cls=FsconfGroup)
def participants() -> None:
    """Participants (PARTICIPANT: a CallSid or a participant label)."""


@participants.command("list")
@click.argument("conference")
@click.option("--all", "include_gone", is_flag=True, help="Include participants who left.")
@json_option
@pass_context
def participants_list(context: Context, conference: str, include_gone: bool, as_json: bool) -> None:
    """The participants of a conference, in join order."""
    with context.session() as session:
        row = _resolve_conference(context, session, conference)
        members = repo.list_participants(
            session, conference_sid=row.sid, present_only=not include_gone
        )
    if as_json:
        echo_json(
            {
                "conference_sid": row.sid,
                "participants": [output.participant(member) for member in members],
            }
        )
        return
    click.echo(output.table(PARTICIPANT_HEADERS, [_participant_row(m) for m in members]))


def _act(
    context: Context,
    conference: str,
    participant: str,
    action: Callable[[ApiClient, str, str], None],
    done: str,
) -> None:
    with context.session() as session:
        room = _resolve_conference(context, session, conference)
        member = resolve_participant(session, room, participant)
        if not member.present:
            raise ResolveError(
                f"participant {participant} has left conference {room.sid} ({member.status})"
            )
        client = _client(context, session, room)
    action(client, room.sid, member.call_sid)
    who = f"{member.call_sid}" + (f" ({member.label})" if member.label else "")
    click.echo(f"{who} {done} in conference {room.sid}")


def _update(params: dict[str, str]) -> Callable[[ApiClient, str, str], None]:
    def send(client: ApiClient, conference_sid: str, call_sid: str) -> None:
        client.update_participant(conference_sid, call_sid, params)

    return send


def _kick(client: ApiClient, conference_sid: str, call_sid: str) -> None:
    client.kick_participant(conference_sid, call_sid)


#: command -> (REST parameters, what the operator reads afterwards)
PARTICIPANT_ACTIONS: dict[str, tuple[dict[str, str] | None, str, str]] = {
    "mute": ({"Muted": "true"}, "muted", "Mute a participant."),
    "unmute": ({"Muted": "false"}, "unmuted", "Unmute a participant."),
    "hold": ({"Hold": "true"}, "on hold", "Put a participant on hold."),
    "unhold": ({"Hold": "false"}, "off hold", "Take a participant off hold."),
    "kick": (None, "kicked", "Remove a participant; its call continues to its <Dial> action."),
}


def _register_participant_action(
    name: str, params: dict[str, str] | None, done: str, help_text: str
) -> None:
    action = _update(params) if params is not None else _kick

    @participants.command(name, help=help_text)
    @click.argument("conference")
    @click.argument("participant")
    @pass_context
    def command(context: Context, conference: str, participant: str) -> None:
        _act(context, conference, participant, action, done)


for _name, (_params, _done, _help) in PARTICIPANT_ACTIONS.items():
    _register_participant_action(_name, _params, _done, _help)


def _http_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("must be an absolute http(s) URL")
    return value


@participants.command("announce")
@click.argument("conference")
@click.argument("participant")
@click.argument("url", callback=_http_url)
@click.option(
    "--method",
    type=click.Choice(["GET", "POST"]),
    default="POST",
    show_default=True,
    help="How to fetch URL.",
)
@pass_context
def participants_announce(
    context: Context, conference: str, participant: str, url: str, method: str
) -> None:
    """Play URL (audio or TwiML <Play>/<Say>) to one participant."""
    params = {"AnnounceUrl": url, "AnnounceMethod": method}
    _act(context, conference, participant, _update(params), "hears the announcement")


# --- callbacks -----------------------------------------------------------------------


@cli.group(cls=FsconfGroup)
def callbacks() -> None:
    """The webhook outbox: status callbacks waiting, delivered or failed."""


@callbacks.command("list")
@click.option("--failed", is_flag=True, help="Only the dead letters (status failed).")
@json_option
@pass_context
def callbacks_list(context: Context, failed: bool, as_json: bool) -> None:
    """Outbox rows, oldest first."""
    from fsconf.webhooks.delivery import list_callbacks

    with context.session() as session:
        rows = list_callbacks(session, failed_only=failed)
    if as_json:
        echo_json({"callbacks": [output.callback(row) for row in rows]})
        return
    click.echo(
        output.table(
            [
                "ID",
                "STATUS",
                "KIND",
                "ATTEMPTS",
                "CONFERENCE",
                "SEQ",
                "NEXT ATTEMPT",
                "LAST ERROR",
                "URL",
            ],
            [
                [
                    row.id,
                    row.status,
                    row.kind,
                    row.attempts,
                    row.conference_sid,
                    row.sequence_number,
                    output.iso8601(row.next_attempt_at) if row.status == "pending" else None,
                    row.last_error,
                    f"{row.method} {output.mask_url(row.url)}",
                ]
                for row in rows
            ],
        )
    )


@callbacks.command("retry")
@click.argument("callback_id", metavar="ID", required=False, type=click.IntRange(min=1))
@click.option("--all-failed", is_flag=True, help="Retry every failed callback.")
@pass_context
def callbacks_retry(context: Context, callback_id: int | None, all_failed: bool) -> None:
    """Send a failed callback (ID) or all of them (--all-failed) again, attempts reset."""
    from fsconf.webhooks.delivery import retry, retry_all_failed

    if (callback_id is None) == (not all_failed):
        raise click.UsageError("give either a callback ID or --all-failed")
    with context.session() as session:
        if all_failed:
            count = retry_all_failed(session)
        else:
            assert callback_id is not None
            retry(session, callback_id=callback_id)
    if all_failed:
        click.echo(f"{count} failed callbacks queued again")
    else:
        click.echo(f"callback {callback_id} queued again")


# --- alerts ----------------------------------------------------------------------------


@cli.group(cls=FsconfGroup)
def alerts() -> None:
    """Alerts: the errors fsconf reported (Twilio error codes)."""


@alerts.command("list")
@click.option("--account", "account_sid", help="Only this AccountSid.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N, newest first.")
@json_option
@pass_context
def alerts_list(
    context: Context, account_sid: str | None, limit: int | None, as_json: bool
) -> None:
    """Alerts, newest first."""
    with context.session() as session:
        rows = repo.list_alerts(session, account_sid=account_sid, limit=limit)
    if as_json:
        echo_json({"alerts": [output.alert(row) for row in rows]})
        return
    click.echo(
        output.table(
            ["SID", "CREATED", "CODE", "LEVEL", "CALL", "MESSAGE"],
            [
                [
                    row.sid,
                    output.iso8601(row.date_created),
                    row.error_code,
                    row.log_level,
                    row.call_sid,
                    row.message,
                ]
                for row in rows
            ],
        )
    )


# --- doctor ----------------------------------------------------------------------------


@cli.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds to wait for each connection and each answer.",
)
@json_option
@pass_context
@click.pass_context
def doctor(ctx: click.Context, context: Context, timeout: float, as_json: bool) -> None:
    """Check the database and every FreeSWITCH of FSCONF_ESL, and say what to fix.

    Exit code 0 when no check FAILed (WARN is fine), 1 otherwise.
    """
    from fsconf.ops.doctor import check_database, diagnose_node, exit_code

    settings = context.settings
    checks = [check_database(settings.database_url)]
    for node in settings.esl_nodes:
        checks.extend(diagnose_node(node, timeout=timeout))
    code = exit_code(checks)
    if as_json:
        echo_json(
            {
                "ok": code == 0,
                "checks": [
                    {
                        "scope": check.scope,
                        "name": check.name,
                        "status": str(check.status),
                        "detail": check.detail,
                        "fix": check.fix or None,
                    }
                    for check in checks
                ],
            }
        )
    else:
        scope_width = max(len(check.scope) for check in checks)
        for check in checks:
            click.echo(
                f"{check.status.value:<4}  {check.scope.ljust(scope_width)}  "
                f"{check.name}: {check.detail}"
            )
            if check.fix and check.status.value != "OK":
                click.echo(f"{'':<4}  {'':<{scope_width}}  fix: {check.fix}")
        counts = {
            status: sum(1 for c in checks if c.status.value == status)
            for status in ("OK", "WARN", "FAIL")
        }
        click.echo(f"{counts['FAIL']} FAIL, {counts['WARN']} WARN, {counts['OK']} OK")
    ctx.exit(code)


@cli.command()
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@pass_context
def serve(context: Context, log_level: str) -> None:
    """Run everything: inbound ESL to each node, the outbound call server,
    the webhook workers, the REST API and /metrics. SIGTERM stops gracefully."""
    import logging
    import signal

    import gevent
    import gevent.event

    from fsconf.service import collector
    from fsconf.service.app import Fsconf
    from fsconf.store import native

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = Fsconf(context.settings)
    app.start()
    collector.tune()
    native.tune()
    stopping = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopping.set)
    stopping.wait()
    app.stop()


@cli.command()
def demo() -> None:
    """A moderated conference against FakeSwitch, printing each callback (no
    FreeSWITCH needed). Exits 0 when it behaved as on Twilio."""
    import logging

    from fsconf.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    code = run_demo(sys.stdout)
    if code:
        raise CommandError("the demo did not go as on Twilio (see above)")


def main() -> None:
    try:
        result = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except FsconfError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
