"""What the app factory injects, and how a view reaches it.

Theory of operation: :func:`fsconf.api.create_app` stores one
:class:`ApiContext` in ``app.extensions``; views read it with :func:`current`
and the authenticated account with :func:`account_sid`.

Sessions are short: a view reads in one :func:`session_scope` block and leaves it
*before* it calls the :class:`ConferenceControl`.  The control writes the
rows itself (from FreeSWITCH's confirming event), and on SQLite the engine
has a single pooled connection, so a session held across a control call would
make the control wait for us forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy.orm import Session

from fsconf.service.control import ConferenceControl
from fsconf.store.db import transaction

EXTENSION = "fsconf.api"


@dataclass(frozen=True, slots=True)
class ApiContext:
    session_factory: Callable[[], Session]
    control: ConferenceControl
    public_url: str
    recordings_dir: str | None


def current() -> ApiContext:
    context = current_app.extensions[EXTENSION]
    assert isinstance(context, ApiContext)
    return context


def account_sid() -> str:
    """The authenticated account of this request (set by :mod:`fsconf.api.auth`)."""
    sid = g.get("account_sid")
    assert isinstance(sid, str), "account_sid() outside an authenticated request"
    return sid


@contextmanager
def session_scope() -> Iterator[Session]:
    with transaction(current().session_factory) as session:
        yield session
