"""TwiML schema: from a parsed lxml tree to the immutable verb tree.

Theory of operation
-------------------
The registries below are the whole vocabulary fsconf runs: :data:`VERBS` maps
each verb tag to its builder and :data:`NOUNS` each <Dial> noun tag to its
builder. A tag is looked up in these dicts and nowhere else. Tags that Twilio
has but fsconf does not run are named in :data:`UNSUPPORTED_VERBS` and
:data:`UNSUPPORTED_NOUNS`, only so the error says "not supported by fsconf"
instead of "unknown".

A builder reads exactly one element. It:

1. refuses any attribute that is not a key of the element's defaults table
   (:mod:`fsconf.twiml.verbs`), and any attribute value that holds a control
   character or is longer than :data:`~fsconf.twiml.values.MAX_ATTRIBUTE_LENGTH`,
   whether or not fsconf uses it;
2. reads each attribute through a typed parser from :mod:`fsconf.twiml.values`,
   falling back to the table's default text, parsed the same way;
3. refuses children and text it does not expect.

Every refusal is a :class:`~fsconf.errors.TwimlError` with code 12200 that names
the element, its line and the document URL. Builders descend only where the
schema allows children (Response -> verb, Dial -> noun, Say -> SSML), so the
depth of our recursion is bounded by the schema, and lxml's own depth cap
bounds SSML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

from lxml import etree

from fsconf.errors import TwimlError
from fsconf.twiml import values
from fsconf.twiml.errors import DOCUMENT_PARSE_FAILURE, SCHEMA_VALIDATION
from fsconf.twiml.verbs import (
    CONFERENCE_DEFAULTS,
    DIAL_DEFAULTS,
    HANGUP_DEFAULTS,
    PAUSE_DEFAULTS,
    PLAY_DEFAULTS,
    REDIRECT_DEFAULTS,
    REJECT_DEFAULTS,
    RESPONSE_DEFAULTS,
    SAY_DEFAULTS,
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

T = TypeVar("T")

Element = etree._Element


@dataclass(frozen=True, slots=True)
class Document:
    """What every builder needs to know about the document being read."""

    url: str
    restricted: bool


# --- Value parsers shared by several elements ------------------------------------

_method = values.enum_parser(HttpMethod, case_insensitive=True)
# Beep mixes a boolean with two camelCase words; Twilio treats true/false
# case-insensitively, so the whole attribute is.
_beep = values.enum_parser(Beep, case_insensitive=True)
_loop = values.int_parser(0, 1000)
_recording_events = values.token_set_parser(RecordingEvent)
_trim = values.enum_parser(Trim)
_voice = values.pattern_parser(r"[A-Za-z0-9._-]{1,64}", "a voice name")
_language = values.pattern_parser(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}", "a language tag")
_digits = values.pattern_parser(r"[0-9*#wW]{1,256}", "DTMF digits (0-9 * # w)")
_ring_tone = values.pattern_parser(r"[a-z]{2}(-[a-z]{1,8})?", "a ring tone country code")
# Twilio's maximum call duration is 24 h; its default timeLimit is 4 h.
_time_limit = values.int_parser(1, 86400)
_pause_length = values.int_parser(0, 86400)
# Accepted with no effect on a conference: only sanity-checked.
_dial_timeout = values.int_parser(0, 86400)
_max_participants = values.int_parser(1, 250)


# --- Reading one element ----------------------------------------------------------

_MAX_TAG_IN_ERRORS: Final = 64
_MAX_REASON_LENGTH: Final = 300


def line_of(element: Element) -> int:
    line = element.sourceline
    return line if isinstance(line, int) else 0


def _as_str(value: str | bytes) -> str:
    # lxml gives str on Python 3; its stubs still say str | bytes.
    return value if isinstance(value, str) else value.decode("utf-8")


def tag_of(element: Element) -> str:
    """The element's tag, cut short: a hostile tag name must not flood a log."""
    return element.tag[:_MAX_TAG_IN_ERRORS]


def schema_error(element: Element, document: Document, reason: str) -> TwimlError:
    return TwimlError(
        SCHEMA_VALIDATION,
        reason[:_MAX_REASON_LENGTH],
        element=tag_of(element),
        line=line_of(element),
        url=document.url,
    )


@dataclass(frozen=True, slots=True)
class AttributeReader:
    """Typed access to one element's attributes, against its defaults table."""

    element: Element
    defaults: Mapping[str, str | None]
    document: Document

    @classmethod
    def of(
        cls, element: Element, defaults: Mapping[str, str | None], document: Document
    ) -> AttributeReader:
        """Check every attribute present, used by fsconf or not, and wrap."""
        for raw_name, raw_value in element.items():
            name, raw = _as_str(raw_name), _as_str(raw_value)
            if name not in defaults:
                raise schema_error(element, document, f"unknown attribute {name!r}")
            try:
                values.check_length(values.check_text(raw), values.MAX_ATTRIBUTE_LENGTH)
            except values.InvalidValue as exc:
                raise schema_error(element, document, f"{name}: {exc.reason}") from None
        return cls(element, defaults, document)

    def get(self, name: str, parse: Callable[[str], T]) -> T:
        """The attribute's value, or its table default; both exist."""
        raw = self.element.get(name)
        if raw is None:
            raw = self.defaults[name]
        if raw is None:
            # A builder bug, not a document error: the table has no default.
            raise LookupError(f"<{self.element.tag}> {name} has no default")
        return self._parse(name, raw, parse)

    def optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        """The attribute's value, its table default, or None."""
        raw = self.element.get(name)
        if raw is None:
            raw = self.defaults[name]
        if raw is None:
            return None
        return self._parse(name, raw, parse)

    def url(self, name: str) -> str | None:
        """An optional callback URL, resolved; empty means not set.

        Templates and helper libraries emit ``statusCallback=""`` for "none";
        refusing it would break an app Twilio runs. (waitUrl is different:
        there ``''`` means silence, see :func:`values.wait_url_parser`.)
        """
        resolve = values.url_parser(self.document.url)
        return self.optional(name, lambda raw: resolve(raw) if raw.strip() else None)

    def _parse(self, name: str, raw: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(raw)
        except values.InvalidValue as exc:
            raise schema_error(self.element, self.document, f"{name}: {exc.reason}") from None


def _parse_text(element: Element, document: Document, parse: Callable[[str], T]) -> T:
    try:
        return parse(element.text or "")
    except values.InvalidValue as exc:
        raise schema_error(element, document, f"text: {exc.reason}") from None


def _refuse_children(element: Element, document: Document) -> None:
    for child in element:
        raise schema_error(child, document, f"<{child.tag}> is not allowed inside <{element.tag}>")


def _refuse_text(element: Element, document: Document) -> None:
    if (element.text or "").strip():
        raise schema_error(element, document, f"unexpected text in <{element.tag}>")


def _refuse_stray_tails(element: Element, document: Document) -> None:
    for child in element:
        if (child.tail or "").strip():
            raise schema_error(child, document, f"unexpected text after <{child.tag}>")


# --- Verbs ---------------------------------------------------------------------------

# Twilio's SSML elements inside <Say>. fsconf speaks the text only (the
# prosody is lost); refusing them would break an app that runs on Twilio.
SSML_TAGS: Final = frozenset(
    {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"}
)
# These mark a boundary between words, so their text must not be glued to
# its neighbours.
_SSML_SEPARATORS: Final = frozenset({"break", "p", "s"})


def _spoken_text(element: Element, document: Document) -> str:
    parts = [element.text or ""]
    for child in element:
        if child.tag not in SSML_TAGS:
            raise schema_error(child, document, f"<{child.tag}> is not allowed inside <Say>")
        separator = " " if child.tag in _SSML_SEPARATORS else ""
        # Recursion depth is bounded by lxml's own nesting cap (huge_tree=False).
        inner = _spoken_text(child, document)
        parts += [separator, inner, separator if inner else "", child.tail or ""]
    return "".join(parts)


def _say_text(raw: str) -> str:
    text = values.check_text(raw, allow_newlines=True).strip()
    return values.check_length(text, values.MAX_SAY_LENGTH)


def build_say(element: Element, document: Document) -> Say:
    attributes = AttributeReader.of(element, SAY_DEFAULTS, document)
    spoken = _spoken_text(element, document)
    try:
        text = _say_text(spoken)
    except values.InvalidValue as exc:
        raise schema_error(element, document, f"text: {exc.reason}") from None
    return Say(
        text=text,
        voice=attributes.optional("voice", _voice),
        language=attributes.optional("language", _language),
        loop=attributes.get("loop", _loop),
        line=line_of(element),
    )


def build_play(element: Element, document: Document) -> Play:
    attributes = AttributeReader.of(element, PLAY_DEFAULTS, document)
    _refuse_children(element, document)
    url = None
    if (element.text or "").strip():
        url = _parse_text(element, document, values.url_parser(document.url))
    digits = attributes.optional("digits", _digits)
    if url is None and digits is None:
        raise schema_error(element, document, "<Play> needs a URL or digits")
    return Play(url=url, loop=attributes.get("loop", _loop), digits=digits, line=line_of(element))


def build_pause(element: Element, document: Document) -> Pause:
    attributes = AttributeReader.of(element, PAUSE_DEFAULTS, document)
    _refuse_children(element, document)
    _refuse_text(element, document)
    return Pause(length=attributes.get("length", _pause_length), line=line_of(element))


def build_redirect(element: Element, document: Document) -> Redirect:
    attributes = AttributeReader.of(element, REDIRECT_DEFAULTS, document)
    _refuse_children(element, document)
    return Redirect(
        url=_parse_text(element, document, values.url_parser(document.url)),
        method=attributes.get("method", _method),
        line=line_of(element),
    )


def build_hangup(element: Element, document: Document) -> Hangup:
    AttributeReader.of(element, HANGUP_DEFAULTS, document)
    _refuse_children(element, document)
    _refuse_text(element, document)
    return Hangup(line=line_of(element))


def build_reject(element: Element, document: Document) -> Reject:
    attributes = AttributeReader.of(element, REJECT_DEFAULTS, document)
    _refuse_children(element, document)
    _refuse_text(element, document)
    return Reject(
        reason=attributes.get("reason", values.enum_parser(RejectReason)),
        line=line_of(element),
    )


def build_conference(element: Element, document: Document) -> Conference:
    attributes = AttributeReader.of(element, CONFERENCE_DEFAULTS, document)
    _refuse_children(element, document)
    return Conference(
        room=_parse_text(element, document, values.parse_room_name),
        muted=attributes.get("muted", values.parse_bool),
        beep=attributes.get("beep", _beep),
        start_conference_on_enter=attributes.get("startConferenceOnEnter", values.parse_bool),
        end_conference_on_exit=attributes.get("endConferenceOnExit", values.parse_bool),
        participant_label=attributes.optional("participantLabel", values.parse_label),
        jitter_buffer_size=attributes.get("jitterBufferSize", values.enum_parser(JitterBufferSize)),
        wait_url=attributes.optional("waitUrl", values.wait_url_parser(document.url)),
        wait_method=attributes.get("waitMethod", _method),
        max_participants=attributes.get("maxParticipants", _max_participants),
        record=attributes.get("record", values.enum_parser(ConferenceRecord)),
        region=attributes.optional("region", values.enum_parser(Region)),
        trim=attributes.get("trim", _trim),
        coach=attributes.optional("coach", values.parse_call_sid),
        status_callback_event=attributes.optional(
            "statusCallbackEvent", values.token_set_parser(ConferenceEvent)
        ),
        status_callback=attributes.url("statusCallback"),
        status_callback_method=attributes.get("statusCallbackMethod", _method),
        recording_status_callback=attributes.url("recordingStatusCallback"),
        recording_status_callback_method=attributes.get("recordingStatusCallbackMethod", _method),
        recording_status_callback_event=attributes.get(
            "recordingStatusCallbackEvent", _recording_events
        ),
        event_callback_url=attributes.url("eventCallbackUrl"),
        recording_configuration_id=attributes.optional(
            "recordingConfigurationId", values.parse_free_text
        ),
        line=line_of(element),
    )


def _dial_noun(element: Element, document: Document) -> Conference:
    children = list(element)
    for child in children:
        if child.tag not in NOUNS:
            raise _unknown(child, document, inside_dial=True)
    if len(children) != 1:
        raise schema_error(
            element, document, f"<Dial> must hold exactly one <Conference> ({len(children)})"
        )
    _refuse_stray_tails(element, document)
    return NOUNS[children[0].tag](children[0], document)


def build_dial(element: Element, document: Document) -> Dial:
    attributes = AttributeReader.of(element, DIAL_DEFAULTS, document)
    if (element.text or "").strip():
        raise schema_error(
            element, document, "dialing a number as <Dial> text is not supported by fsconf"
        )
    return Dial(
        conference=_dial_noun(element, document),
        action=attributes.url("action"),
        method=attributes.get("method", _method),
        hangup_on_star=attributes.get("hangupOnStar", values.parse_bool),
        time_limit=attributes.get("timeLimit", _time_limit),
        record=attributes.get("record", values.enum_parser(DialRecord)),
        caller_id=attributes.optional("callerId", values.parse_free_text),
        timeout=attributes.get("timeout", _dial_timeout),
        answer_on_bridge=attributes.get("answerOnBridge", values.parse_bool),
        ring_tone=attributes.optional("ringTone", _ring_tone),
        recording_status_callback=attributes.url("recordingStatusCallback"),
        recording_status_callback_method=attributes.get("recordingStatusCallbackMethod", _method),
        recording_status_callback_event=attributes.get(
            "recordingStatusCallbackEvent", _recording_events
        ),
        recording_track=attributes.get("recordingTrack", values.enum_parser(RecordingTrack)),
        recording_configuration_id=attributes.optional(
            "recordingConfigurationId", values.parse_free_text
        ),
        trim=attributes.get("trim", _trim),
        sequential=attributes.get("sequential", values.parse_bool),
        refer_url=attributes.url("referUrl"),
        refer_method=attributes.get("referMethod", _method),
        events=attributes.optional("events", values.parse_free_text),
        passports=attributes.optional("passports", values.parse_free_text),
        line=line_of(element),
    )


# --- Registries ------------------------------------------------------------------------

VERBS: Final[Mapping[str, Callable[[Element, Document], Verb]]] = MappingProxyType(
    {
        "Say": build_say,
        "Play": build_play,
        "Pause": build_pause,
        "Redirect": build_redirect,
        "Hangup": build_hangup,
        "Reject": build_reject,
        "Dial": build_dial,
    }
)

NOUNS: Final[Mapping[str, Callable[[Element, Document], Conference]]] = MappingProxyType(
    {"Conference": build_conference}
)

#: The only verbs a waitUrl/hold/announce document may use (spec: "If the
#: waitUrl responds with TwiML, <Record>, <Dial>, <Hangup>, and <Gather> verbs
#: are not allowed"); Reject is not in Twilio's allowed list either.
WAIT_VERBS: Final = frozenset({"Play", "Say", "Pause", "Redirect"})

UNSUPPORTED_VERBS: Final = frozenset(
    {
        "Gather", "Record", "Enqueue", "Leave", "Connect", "Stream", "Start", "Stop",
        "Refer", "Sms", "Message", "Pay", "Prompt", "Echo", "Queue", "Siprec",
        "Transcription", "Conversation", "VirtualAgent", "Autopilot", "Room",
        "ConversationRelay", "Application",
    }
)  # fmt: skip

UNSUPPORTED_NOUNS: Final = frozenset(
    {"Number", "Client", "Sip", "Queue", "Sim", "Application", "WhatsApp"}
)


def _unknown(element: Element, document: Document, *, inside_dial: bool) -> TwimlError:
    tag = element.tag
    if inside_dial and tag in UNSUPPORTED_NOUNS:
        reason = f"<Dial><{tag}> is not supported by fsconf (only <Conference>)"
    elif inside_dial:
        reason = f"<{tag}> is not a <Dial> noun"
    elif tag in NOUNS:
        reason = f"<{tag}> must be inside <Dial>"
    elif tag in UNSUPPORTED_VERBS or tag in UNSUPPORTED_NOUNS:
        reason = f"<{tag}> is not supported by fsconf"
    else:
        reason = f"unknown verb <{tag}>"
    return schema_error(element, document, reason)


def build_verb(element: Element, document: Document) -> Verb:
    builder = VERBS.get(element.tag)
    if builder is None:
        raise _unknown(element, document, inside_dial=False)
    if document.restricted and element.tag not in WAIT_VERBS:
        raise schema_error(
            element,
            document,
            f"<{element.tag}> is not allowed in a wait/hold/announce document"
            " (only Play, Say, Pause, Redirect)",
        )
    return builder(element, document)


def build_response(root: Element, document: Document) -> Response:
    """The whole document; ``root`` is lxml's root element."""
    if root.tag != "Response":
        # Twilio's own code for this is 12102; fsconf reports the family code.
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE,
            f"the root element must be <Response>, not <{tag_of(root)}>",
            element=tag_of(root),
            line=line_of(root),
            url=document.url,
        )
    AttributeReader.of(root, RESPONSE_DEFAULTS, document)
    _refuse_text(root, document)
    _refuse_stray_tails(root, document)
    verbs = tuple(build_verb(child, document) for child in root)
    return Response(verbs=verbs, url=document.url, line=line_of(root))
