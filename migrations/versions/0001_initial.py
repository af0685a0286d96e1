"""Initial schema: accounts, calls, conferences, participants, recordings,
the callback outbox and alerts.

Revision ID: 0001
Revises:
Create Date: 2025-11-25

Hand-checked against fsconf.store.models (``fsconf.store.migrate.check`` proves
they match).  The migration deliberately uses plain SQLAlchemy types
(``DateTime(timezone=True)`` for the models' ``UTCDateTime``) and literal
CHECK/WHERE texts, so later changes to the models cannot rewrite history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)

# The partial unique indexes (DESIGN.md, "Identity").
ACTIVE_CONFERENCE = "status != 'completed'"
PRESENT_PARTICIPANT = "status NOT IN ('complete', 'failed')"
PRESENT_LABEL = "label IS NOT NULL AND status NOT IN ('complete', 'failed')"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("auth_token", sa.String(length=64), nullable=False),
        sa.Column("friendly_name", sa.String(length=255), nullable=False),
        sa.Column("voice_url", sa.Text(), nullable=True),
        sa.Column("voice_method", sa.String(length=4), nullable=False),
        sa.Column("fallback_url", sa.Text(), nullable=True),
        sa.Column("fallback_method", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("date_created", _UTC, nullable=False),
        sa.Column("date_updated", _UTC, nullable=False),
        sa.CheckConstraint(
            "fallback_method IN ('GET', 'POST')", name=op.f("ck_accounts_fallback_method")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'closed')", name=op.f("ck_accounts_status")
        ),
        sa.CheckConstraint(
            "voice_method IN ('GET', 'POST')", name=op.f("ck_accounts_voice_method")
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_accounts")),
    )
    op.create_table(
        "alerts",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=False),
        sa.Column("log_level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("more_info", sa.Text(), nullable=True),
        sa.Column("request_url", sa.Text(), nullable=True),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("date_created", _UTC, nullable=False),
        sa.Column("date_updated", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_sid"], ["accounts.sid"], name=op.f("fk_alerts_account_sid_accounts")
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_alerts")),
    )
    op.create_index(
        "ix_alerts_account_sid_date_created",
        "alerts",
        ["account_sid", "date_created"],
        unique=False,
    )
    op.create_table(
        "calls",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("from_", sa.String(length=255), nullable=False),
        sa.Column("to", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=True),
        sa.Column("start_time", _UTC, nullable=True),
        sa.Column("answer_time", _UTC, nullable=True),
        sa.Column("end_time", _UTC, nullable=True),
        sa.Column("date_created", _UTC, nullable=False),
        sa.Column("date_updated", _UTC, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'ringing', 'in-progress', 'completed', 'busy', 'failed',"
            " 'no-answer', 'canceled')",
            name=op.f("ck_calls_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_sid"], ["accounts.sid"], name=op.f("fk_calls_account_sid_accounts")
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_calls")),
    )
    op.create_index(
        "ix_calls_account_sid_date_created", "calls", ["account_sid", "date_created"], unique=False
    )
    op.create_table(
        "conferences",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("friendly_name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("node", sa.String(length=255), nullable=True),
        sa.Column("max_participants", sa.Integer(), nullable=False),
        sa.Column("record", sa.String(length=32), nullable=False),
        sa.Column("trim", sa.String(length=32), nullable=False),
        sa.Column("status_callback", sa.Text(), nullable=True),
        sa.Column("status_callback_method", sa.String(length=4), nullable=False),
        sa.Column("status_callback_events", sa.Text(), nullable=False),
        sa.Column("recording_status_callback", sa.Text(), nullable=True),
        sa.Column("recording_status_callback_method", sa.String(length=4), nullable=False),
        sa.Column("recording_status_callback_events", sa.Text(), nullable=False),
        sa.Column("event_callback_url", sa.Text(), nullable=True),
        sa.Column("sequence_number", sa.Integer(), nullable=False),
        sa.Column("reason_ended", sa.String(length=64), nullable=True),
        sa.Column("call_sid_ending_conference", sa.String(length=34), nullable=True),
        sa.Column("participant_label_ending_conference", sa.String(length=128), nullable=True),
        sa.Column("date_created", _UTC, nullable=False),
        sa.Column("date_updated", _UTC, nullable=False),
        sa.Column("start_time", _UTC, nullable=True),
        sa.Column("end_time", _UTC, nullable=True),
        sa.CheckConstraint(
            "recording_status_callback_method IN ('GET', 'POST')",
            name=op.f("ck_conferences_recording_status_callback_method"),
        ),
        sa.CheckConstraint(
            "status IN ('init', 'in-progress', 'completed')", name=op.f("ck_conferences_status")
        ),
        sa.CheckConstraint(
            "status_callback_method IN ('GET', 'POST')",
            name=op.f("ck_conferences_status_callback_method"),
        ),
        sa.CheckConstraint(
            "max_participants BETWEEN 1 AND 250", name=op.f("ck_conferences_max_participants")
        ),
        sa.CheckConstraint("sequence_number >= 0", name=op.f("ck_conferences_sequence_number")),
        sa.ForeignKeyConstraint(
            ["account_sid"], ["accounts.sid"], name=op.f("fk_conferences_account_sid_accounts")
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_conferences")),
    )
    op.create_index(
        "ix_conferences_account_sid_date_created",
        "conferences",
        ["account_sid", "date_created"],
        unique=False,
    )
    op.create_index(
        "ix_conferences_account_sid_status", "conferences", ["account_sid", "status"], unique=False
    )
    op.create_index(
        "uq_conferences_active_friendly_name",
        "conferences",
        ["account_sid", "friendly_name"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_CONFERENCE),
        postgresql_where=sa.text(ACTIVE_CONFERENCE),
    )
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("conference_sid", sa.String(length=34), nullable=True),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sequence_number", sa.Integer(), nullable=True),
        sa.Column("ordering_key", sa.String(length=64), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=4), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", _UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created", _UTC, nullable=False),
        sa.Column("delivered_at", _UTC, nullable=True),
        sa.CheckConstraint("method IN ('GET', 'POST')", name=op.f("ck_callbacks_method")),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_callbacks_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_callbacks_attempts")),
        sa.ForeignKeyConstraint(
            ["account_sid"], ["accounts.sid"], name=op.f("fk_callbacks_account_sid_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["conference_sid"],
            ["conferences.sid"],
            name=op.f("fk_callbacks_conference_sid_conferences"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index(
        "ix_callbacks_conference_sid_sequence_number",
        "callbacks",
        ["conference_sid", "sequence_number"],
        unique=False,
    )
    op.create_index(
        "ix_callbacks_ordering_key_status_id",
        "callbacks",
        ["ordering_key", "status", "id"],
        unique=False,
    )
    op.create_index(
        "ix_callbacks_status_next_attempt_at",
        "callbacks",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "participants",
        sa.Column("conference_sid", sa.String(length=34), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=False),
        sa.Column("join_sequence", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("placement", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("hold", sa.Boolean(), nullable=False),
        sa.Column("coaching", sa.Boolean(), nullable=False),
        sa.Column("call_sid_to_coach", sa.String(length=34), nullable=True),
        sa.Column("start_conference_on_enter", sa.Boolean(), nullable=False),
        sa.Column("end_conference_on_exit", sa.Boolean(), nullable=False),
        sa.Column("beep", sa.String(length=8), nullable=False),
        sa.Column("wait_url", sa.Text(), nullable=True),
        sa.Column("wait_method", sa.String(length=4), nullable=False),
        sa.Column("hold_url", sa.Text(), nullable=True),
        sa.Column("hold_method", sa.String(length=4), nullable=False),
        sa.Column("jitter_buffer_size", sa.String(length=8), nullable=False),
        sa.Column("date_created", _UTC, nullable=False),
        sa.Column("date_updated", _UTC, nullable=False),
        sa.CheckConstraint(
            "beep IN ('true', 'false', 'onEnter', 'onExit')", name=op.f("ck_participants_beep")
        ),
        sa.CheckConstraint(
            "hold_method IN ('GET', 'POST')", name=op.f("ck_participants_hold_method")
        ),
        sa.CheckConstraint(
            "jitter_buffer_size IN ('small', 'medium', 'large', 'off')",
            name=op.f("ck_participants_jitter_buffer_size"),
        ),
        sa.CheckConstraint(
            "placement IN ('PARKED', 'MIXED')", name=op.f("ck_participants_placement")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'connecting', 'ringing', 'connected', 'complete', 'failed')",
            name=op.f("ck_participants_status"),
        ),
        sa.CheckConstraint(
            "wait_method IN ('GET', 'POST')", name=op.f("ck_participants_wait_method")
        ),
        sa.CheckConstraint("join_sequence >= 1", name=op.f("ck_participants_join_sequence")),
        sa.ForeignKeyConstraint(
            ["call_sid"], ["calls.sid"], name=op.f("fk_participants_call_sid_calls")
        ),
        sa.ForeignKeyConstraint(
            ["conference_sid"],
            ["conferences.sid"],
            name=op.f("fk_participants_conference_sid_conferences"),
        ),
        sa.PrimaryKeyConstraint(
            "conference_sid", "call_sid", "join_sequence", name=op.f("pk_participants")
        ),
    )
    op.create_index("ix_participants_call_sid", "participants", ["call_sid"], unique=False)
    op.create_index(
        "uq_participants_present_call",
        "participants",
        ["conference_sid", "call_sid"],
        unique=True,
        sqlite_where=sa.text(PRESENT_PARTICIPANT),
        postgresql_where=sa.text(PRESENT_PARTICIPANT),
    )
    op.create_index(
        "uq_participants_present_label",
        "participants",
        ["conference_sid", "label"],
        unique=True,
        sqlite_where=sa.text(PRESENT_LABEL),
        postgresql_where=sa.text(PRESENT_LABEL),
    )
    op.create_table(
        "recordings",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("conference_sid", sa.String(length=34), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("start_time", _UTC, nullable=True),
        sa.Column("track", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("date_created", _UTC, nullable=False),
        sa.Column("date_updated", _UTC, nullable=False),
        sa.CheckConstraint(
            "status IN ('in-progress', 'paused', 'stopped', 'processing', 'completed', 'absent')",
            name=op.f("ck_recordings_status"),
        ),
        sa.CheckConstraint("channels = 1", name=op.f("ck_recordings_channels")),
        sa.ForeignKeyConstraint(
            ["account_sid"], ["accounts.sid"], name=op.f("fk_recordings_account_sid_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["conference_sid"],
            ["conferences.sid"],
            name=op.f("fk_recordings_conference_sid_conferences"),
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_recordings")),
    )
    op.create_index(
        "ix_recordings_account_sid_date_created",
        "recordings",
        ["account_sid", "date_created"],
        unique=False,
    )
    op.create_index("ix_recordings_conference_sid", "recordings", ["conference_sid"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recordings_conference_sid", table_name="recordings")
    op.drop_index("ix_recordings_account_sid_date_created", table_name="recordings")
    op.drop_table("recordings")
    op.drop_index("uq_participants_present_label", table_name="participants")
    op.drop_index("uq_participants_present_call", table_name="participants")
    op.drop_index("ix_participants_call_sid", table_name="participants")
    op.drop_table("participants")
    op.drop_index("ix_callbacks_status_next_attempt_at", table_name="callbacks")
    op.drop_index("ix_callbacks_ordering_key_status_id", table_name="callbacks")
    op.drop_index("ix_callbacks_conference_sid_sequence_number", table_name="callbacks")
    op.drop_table("callbacks")
    op.drop_index("uq_conferences_active_friendly_name", table_name="conferences")
    op.drop_index("ix_conferences_account_sid_status", table_name="conferences")
    op.drop_index("ix_conferences_account_sid_date_created", table_name="conferences")
    op.drop_table("conferences")
    op.drop_index("ix_calls_account_sid_date_created", table_name="calls")
    op.drop_table("calls")
    op.drop_index("ix_alerts_account_sid_date_created", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("accounts")
