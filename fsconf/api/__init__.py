"""The Twilio-compatible REST API, as a Flask app factory (served by gevent).

Theory of operation
-------------------
``create_app`` takes everything it needs as arguments (no globals, no
environment): the session factory, the :class:`ConferenceControl` every
mutation goes through, the public URL, and the recordings directory.

Routes live under ``/2010-04-01/Accounts/{AccountSid}`` in one parent
blueprint whose ``before_request`` authenticates (see :mod:`fsconf.api.auth`)
before any child view runs; ``GET /healthz`` is outside it and needs no auth.

Views read rows, validate parameters, call the control and read the rows
again: the control returns only once FreeSWITCH confirmed the change and the
store holds it, so the answer is what FreeSWITCH did, never what we hoped.

``public_url`` is the externally visible base of this server.  The resources'
``uri`` fields are relative to the API root, like Twilio's (the helper library
joins them to its own ``base_url``), so it is kept in ``app.config`` for the
places that need an absolute link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.orm import Session

from fsconf.api import auth, conferences, context, errors, participants, recordings
from fsconf.api.context import EXTENSION, ApiContext
from fsconf.api.params import is_http_url
from fsconf.errors import ConfigError, FsconfError
from fsconf.service.control import ConferenceControl

__all__ = ["create_app"]

log = logging.getLogger(__name__)

ACCOUNT_PREFIX = "/2010-04-01/Accounts/<AccountSid>"

account_bp = Blueprint("account", __name__, url_prefix=ACCOUNT_PREFIX)


@account_bp.url_value_preprocessor
def _pop_account_sid(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values is not None:
        auth.authenticate(values.pop("AccountSid"))


account_bp.register_blueprint(conferences.bp)
account_bp.register_blueprint(participants.bp)
account_bp.register_blueprint(recordings.bp)


#: Twilio's requests are small forms; refuse anything bigger before parsing it.
MAX_CONTENT_LENGTH = 64 * 1024


def healthz() -> ResponseReturnValue:
    """200 if the process answers and the database does; no version, settings or counts."""
    try:
        with context.session_scope() as session:
            session.execute(text("SELECT 1"))
    except FsconfError as error:
        log.warning("health check: database unavailable: %s", error)
        return jsonify({"status": "unavailable"}), 503
    return jsonify({"status": "ok"})


def create_app(
    *,
    session_factory: Callable[[], Session],
    control: ConferenceControl,
    public_url: str,
    recordings_dir: str | None = None,
) -> Flask:
    if not is_http_url(public_url):
        raise ConfigError(f"public_url must be an absolute http(s) URL, not {public_url!r}")
    app = Flask(__name__)
    app.config["FSCONF_PUBLIC_URL"] = public_url.rstrip("/")
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.extensions[EXTENSION] = ApiContext(
        session_factory=session_factory,
        control=control,
        public_url=public_url.rstrip("/"),
        recordings_dir=recordings_dir,
    )
    errors.register(app)
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.register_blueprint(account_bp)
    return app
