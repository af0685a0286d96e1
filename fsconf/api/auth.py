"""HTTP Basic auth ``AccountSid:AuthToken``, checked against the Account row.

Theory of operation
-------------------
* The token is compared with :func:`hmac.compare_digest`; an unknown account
  is compared against a dummy token, so a wrong SID and a wrong token take the
  same path and give the same answer (401, 20003).
* A suspended or closed account answers 401 with 20005 (account not active).
* The AccountSid in the path must be the authenticated one.  Any other answers
  404 (20404), the same as a resource that does not exist: one account never
  learns whether another account, or its resources, exist.
"""

from __future__ import annotations

import hmac
import logging

from flask import g, request

from fsconf.api import context
from fsconf.api.errors import ACCOUNT_NOT_ACTIVE, AuthenticationError, ResourceNotFound
from fsconf.store import repositories as repo

log = logging.getLogger(__name__)

# Compared against when the account does not exist (never equal to a real token
# because it is not text a client can send through Basic auth unchanged).
_DUMMY_TOKEN = b"\x00fsconf-no-such-account\x00"


def authenticate(path_account_sid: str) -> None:
    """Set ``g.account_sid`` or raise 401/404 (a Flask ``before_request``)."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        raise AuthenticationError()
    username = credentials.username or ""
    password = (credentials.password or "").encode()
    with context.session_scope() as session:
        account = repo.get_account(session, sid=username) if username else None
        expected = account.auth_token.encode() if account is not None else _DUMMY_TOKEN
        status = account.status if account is not None else None
    token_ok = hmac.compare_digest(password, expected)
    if account is None or not token_ok:
        log.info("API authentication failed for %r from %s", username[:40], request.remote_addr)
        raise AuthenticationError()
    if status != "active":
        raise AuthenticationError("Account is not active", ACCOUNT_NOT_ACTIVE)
    if not hmac.compare_digest(path_account_sid.encode(), username.encode()):
        raise ResourceNotFound()
    g.account_sid = username
