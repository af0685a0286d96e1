"""fsconf's store: SQLAlchemy 2.0 models, keyword-only repositories, migrations.

Usage from the service layer::

    engine = make_engine(database_url_from_env())
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        conference, created = get_or_create_active_conference(
            session, account_sid=account_sid, friendly_name="Room 1234"
        )

Repository functions never commit; :func:`transaction` does.
"""

from fsconf.store.db import (
    DEFAULT_DATABASE_URL,
    database_url_from_env,
    make_engine,
    make_session_factory,
    transaction,
)
from fsconf.store.ids import (
    InvalidSidError,
    call_sid_from_uuid,
    is_sid,
    new_sid,
    uuid_from_call_sid,
)
from fsconf.store.models import (
    Account,
    Alert,
    Base,
    Call,
    Callback,
    Conference,
    Participant,
    Recording,
)
from fsconf.store.repositories import (
    UNSET,
    ConferenceExistsError,
    DuplicateLabelError,
    NotFoundError,
    ParticipantExistsError,
    add_participant,
    count_present_participants,
    create_account,
    create_alert,
    create_call,
    create_conference,
    create_recording,
    end_conference,
    ensure_account,
    find_active_conference,
    get_account,
    get_call,
    get_conference,
    get_or_create_active_conference,
    get_participant,
    get_participant_by_label,
    get_recording,
    list_accounts,
    list_alerts,
    list_conferences,
    list_participants,
    list_recordings,
    mark_participant_left,
    next_sequence_number,
    start_conference,
    update_call_status,
    update_participant,
    update_recording,
)
from fsconf.store.times import format_rfc2822, parse_rfc2822, utc_now

__all__ = [
    "DEFAULT_DATABASE_URL",
    "UNSET",
    "Account",
    "Alert",
    "Base",
    "Call",
    "Callback",
    "Conference",
    "ConferenceExistsError",
    "DuplicateLabelError",
    "InvalidSidError",
    "NotFoundError",
    "Participant",
    "ParticipantExistsError",
    "Recording",
    "add_participant",
    "call_sid_from_uuid",
    "count_present_participants",
    "create_account",
    "create_alert",
    "create_call",
    "create_conference",
    "create_recording",
    "database_url_from_env",
    "end_conference",
    "ensure_account",
    "find_active_conference",
    "format_rfc2822",
    "get_account",
    "get_call",
    "get_conference",
    "get_or_create_active_conference",
    "get_participant",
    "get_participant_by_label",
    "get_recording",
    "is_sid",
    "list_accounts",
    "list_alerts",
    "list_conferences",
    "list_participants",
    "list_recordings",
    "make_engine",
    "make_session_factory",
    "mark_participant_left",
    "new_sid",
    "next_sequence_number",
    "parse_rfc2822",
    "start_conference",
    "transaction",
    "update_call_status",
    "update_participant",
    "update_recording",
    "utc_now",
    "uuid_from_call_sid",
]
