"""TwiML for fsconf: parsed once, safely, into an immutable verb tree.

Theory of operation
-------------------
This package is pure: bytes and a URL in, frozen dataclasses (or a
:class:`~fsconf.errors.TwimlError` with Twilio's code) out. It opens no socket,
reads no clock and never builds a FreeSWITCH command; the interpreter in
``fsconf.calls`` fetches documents and runs the tree.

* :mod:`.parser` — the hardened lxml parser, the size cap, and
  :func:`classify_response` for an HTTP answer (TwiML, plain text or audio);
* :mod:`.schema` — the explicit ``VERBS``/``NOUNS`` registries and one builder
  per element;
* :mod:`.verbs` — the dataclasses, enumerations and defaults tables;
* :mod:`.values` — typed value parsers (bool, enum, int range, URL, Call SID);
* :mod:`.errors` — Twilio's error codes.
"""

from fsconf.twiml.errors import (
    DOCUMENT_PARSE_FAILURE,
    HTTP_RETRIEVAL_FAILURE,
    INVALID_CONTENT_TYPE,
    RESPONSE_TOO_LARGE,
    SCHEMA_VALIDATION,
)
from fsconf.twiml.parser import DEFAULT_MAX_BYTES, classify_response, parse_twiml
from fsconf.twiml.schema import NOUNS, VERBS, WAIT_VERBS
from fsconf.twiml.verbs import (
    Audio,
    Beep,
    Conference,
    ConferenceEvent,
    ConferenceRecord,
    Dial,
    DialRecord,
    Hangup,
    HttpMethod,
    JitterBufferSize,
    Pause,
    Play,
    RecordingEvent,
    RecordingTrack,
    Redirect,
    Region,
    Reject,
    RejectReason,
    Response,
    Say,
    Trim,
    Verb,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DOCUMENT_PARSE_FAILURE",
    "HTTP_RETRIEVAL_FAILURE",
    "INVALID_CONTENT_TYPE",
    "NOUNS",
    "RESPONSE_TOO_LARGE",
    "SCHEMA_VALIDATION",
    "VERBS",
    "WAIT_VERBS",
    "Audio",
    "Beep",
    "Conference",
    "ConferenceEvent",
    "ConferenceRecord",
    "Dial",
    "DialRecord",
    "Hangup",
    "HttpMethod",
    "JitterBufferSize",
    "Pause",
    "Play",
    "RecordingEvent",
    "RecordingTrack",
    "Redirect",
    "Region",
    "Reject",
    "RejectReason",
    "Response",
    "Say",
    "Trim",
    "Verb",
    "classify_response",
    "parse_twiml",
]
