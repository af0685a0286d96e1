"""Errors the REST API answers with, in Twilio's body.

Theory of operation
-------------------
Every failure leaves the API as ``{"code", "message", "more_info", "status"}``
with the matching HTTP status, exactly like Twilio's v2010 API, so the
``twilio`` helper library raises a ``TwilioRestException`` carrying our code.

* Anything fsconf raises on purpose is a :class:`~fsconf.errors.TwilioApiError`
  (the service layer's errors already are; the API's own are the subclasses
  below).
* Werkzeug's routing errors (no such URL, wrong method) are mapped to Twilio's
  codes (20404, 20004).
* Anything else is a bug or a database failure: it is logged with its stack and
  answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from fsconf.errors import TwilioApiError

log = logging.getLogger(__name__)

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

# Twilio's codes used by the API itself.
AUTHENTICATE = 20003
ACCOUNT_NOT_ACTIVE = 20005
METHOD_NOT_ALLOWED = 20004
NOT_FOUND = 20404
INTERNAL_ERROR = 20500

_HTTP_CODES = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}


class AuthenticationError(TwilioApiError):
    """Missing or wrong credentials (401, 20003)."""

    def __init__(self, message: str = "Authenticate", code: int = AUTHENTICATE) -> None:
        super().__init__(code, message, 401)


class ResourceNotFound(TwilioApiError):
    """Unknown resource, or one that belongs to another account (404, 20404)."""

    def __init__(self, path: str | None = None, detail: str | None = None) -> None:
        where = path if path is not None else request.path
        message = f"The requested resource {where} was not found"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(NOT_FOUND, message, 404)


class ParameterError(TwilioApiError):
    """A request parameter has a wrong type or value (400, Twilio's 21xxx code)."""

    def __init__(self, code: int, parameter: str, message: str) -> None:
        super().__init__(code, message, 400)
        self.parameter = parameter


def error_body(code: int, message: str, status: int) -> dict[str, object]:
    return {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": status,
    }


def error_response(code: int, message: str, status: int) -> Response:
    response = jsonify(error_body(code, message, status))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="fsconf"'
    return response


def _on_api_error(error: TwilioApiError) -> Response:
    if error.status >= 500:
        log.error("API %s %s failed: %s", request.method, request.path, error)
    return error_response(error.code, error.message, error.status)


def _on_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 404:
        return error_response(
            NOT_FOUND, f"The requested resource {request.path} was not found", 404
        )
    response = error_response(
        _HTTP_CODES.get(status, status), error.description or error.name, status
    )
    allowed = getattr(error, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def _on_internal_error(error: InternalServerError) -> Response:
    original = error.original_exception or error
    log.error("API %s %s: unexpected error", request.method, request.path, exc_info=original)
    return error_response(INTERNAL_ERROR, "Internal Server Error", 500)


def register(app: Flask) -> None:
    app.register_error_handler(TwilioApiError, _on_api_error)
    app.register_error_handler(InternalServerError, _on_internal_error)
    app.register_error_handler(HTTPException, _on_http_error)
