"""Twilio's error codes for fetching and parsing TwiML.

The codes are Twilio's own, so a log line, an alert or a test that says 12200
means what it means in Twilio's debugger. Every error is raised as
:class:`fsconf.errors.TwimlError` with one of these codes; nothing here is an
exception class on its own.
"""

from __future__ import annotations

from typing import Final

#: The HTTP request for a TwiML document (or a waitUrl/Play resource) failed:
#: connection error, timeout, or a non-2xx status. Fetching is the shell's job;
#: :func:`fsconf.twiml.classify_response` raises it for a non-2xx status.
HTTP_RETRIEVAL_FAILURE: Final = 11200

#: The response body is larger than the cap (Twilio's limit is 64 kB).
RESPONSE_TOO_LARGE: Final = 11750

#: The body is not a TwiML document: not XML, not UTF-8 (or the declared
#: encoding), a root other than <Response>, or a DTD/entity declaration.
DOCUMENT_PARSE_FAILURE: Final = 12100

#: The body is XML but not valid TwiML: an unknown or unsupported verb, noun or
#: attribute, a bad value, or wrong nesting.
SCHEMA_VALIDATION: Final = 12200

#: The Content-Type is missing or is neither TwiML, plain text nor audio.
INVALID_CONTENT_TYPE: Final = 12300
