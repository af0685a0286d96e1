"""Drop ix_callbacks_conference_sid_sequence_number.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

No query of fsconf filters the outbox on ``conference_sid`` (delivery reads
by ``(status, next_attempt_at)`` and ``(ordering_key, status, id)``; ``fsconf
callbacks list`` by ``id``), while every row pays for the index: a speaker
storm inserts one per talking event, and this index, keyed by a random SID,
cost about 1.6 µs of each (bench/README.md, session 5).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_callbacks_conference_sid_sequence_number"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="callbacks")


def downgrade() -> None:
    op.create_index(INDEX, "callbacks", ["conference_sid", "sequence_number"], unique=False)
