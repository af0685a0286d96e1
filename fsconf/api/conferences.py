"""``/Conferences.json`` and ``/Conferences/{Sid}.json``: list, fetch, update.

Update (Twilio's parameters, all optional; unknown ones are ignored):

* ``Status=completed`` ends the conference (every participant continues to
  its Dial action) through ``control.end_conference``;
* ``AnnounceUrl`` (+ ``AnnounceMethod``, default POST) plays to the whole room
  through ``control.announce_conference``.

Both are validated before either is sent.  The answer is the conference as
the store has it once the control has returned.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from fsconf.api import context, params, queries, serializers
from fsconf.api.errors import ResourceNotFound
from fsconf.api.paging import list_body
from fsconf.store.models import Conference

log = logging.getLogger(__name__)

bp = Blueprint("conferences", __name__)


def current_uri() -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def load_conference(sid: str) -> Conference:
    with context.session_scope() as session:
        row = queries.conference(session, account_sid=context.account_sid(), sid=sid)
    if row is None:
        raise ResourceNotFound()
    return row


@bp.get("/Conferences.json")
def list_conferences() -> ResponseReturnValue:
    account_sid = context.account_sid()
    query, filters = queries.conferences(request.args, account_sid=account_sid)
    with context.session_scope() as session:
        body = list_body(
            session,
            args=request.args,
            query=query,
            keyset=queries.CONFERENCE_ORDER,
            key_types=queries.CONFERENCE_KEY_TYPES,
            filters=filters,
            records_key="conferences",
            serialize=serializers.conference,
            path=request.path,
            current_uri=current_uri(),
        )
    return jsonify(body)


@bp.get("/Conferences/<sid>.json")
def fetch_conference(sid: str) -> ResponseReturnValue:
    return jsonify(serializers.conference(load_conference(sid)))


@bp.post("/Conferences/<sid>.json")
def update_conference(sid: str) -> ResponseReturnValue:
    form = request.form
    status = params.choice(form, "Status", ("completed",))
    announce_url = params.url(form, "AnnounceUrl")
    announce_method = params.method(form, "AnnounceMethod") or "POST"
    conference = load_conference(sid)
    control = context.current().control
    if announce_url is not None:
        log.info("API: announce to conference %s (%s)", conference.sid, announce_method)
        control.announce_conference(
            account_sid=conference.account_sid,
            conference_sid=conference.sid,
            url=announce_url,
            method=announce_method,
        )
    if status == "completed":
        log.info("API: end conference %s", conference.sid)
        control.end_conference(account_sid=conference.account_sid, conference_sid=conference.sid)
    return jsonify(serializers.conference(load_conference(sid)))
