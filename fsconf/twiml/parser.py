"""Hardened TwiML parsing, and the classification of an HTTP answer.

Theory of operation
-------------------
Input is the body of an HTTP answer (``bytes``) and the URL it came from;
output is an immutable :class:`~fsconf.twiml.verbs.Response`, or a
:class:`~fsconf.errors.TwimlError` carrying Twilio's code. Nothing here opens a
socket or a file, reads a clock, or keeps state between calls.

The document is hostile until proven otherwise:

* the size is checked **before** lxml sees a byte (11750 above the cap);
* lxml runs with entity resolution, DTD loading and network access off and
  without ``huge_tree``, so libxml2 keeps its own caps (nesting depth 256,
  entity amplification) and a 5,000-deep document fails at once;
* any DOCTYPE, internal or external DTD is refused (12100) right after the
  parse, before any attribute or text is read, so a declared entity is never
  expanded, fetched or looked at;
* comments and processing instructions are dropped by the parser, as Twilio
  ignores them.

Charset: lxml decodes by the BOM or the XML declaration (UTF-8 by default).
The HTTP ``charset`` parameter of an XML answer is ignored, as the document's
own declaration is what TwiML authors (and the twilio helper library) write.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from fsconf.errors import TwimlError
from fsconf.twiml import values
from fsconf.twiml.errors import (
    DOCUMENT_PARSE_FAILURE,
    HTTP_RETRIEVAL_FAILURE,
    INVALID_CONTENT_TYPE,
    RESPONSE_TOO_LARGE,
    SCHEMA_VALIDATION,
)
from fsconf.twiml.schema import Document, build_response
from fsconf.twiml.verbs import Audio, Response, Say

#: Twilio refuses TwiML bodies over 64 kB (error 11750).
DEFAULT_MAX_BYTES: Final = 64 * 1024

# Twilio's "Your Response" page: text/xml, application/xml and text/html are
# interpreted as TwiML; text/plain is read aloud (as one <Say>) and the call
# then hangs up; the audio types below (the <Play> list, plus the common but
# non-standard audio/mp3) are played. Anything else, or no Content-Type at
# all, is 12300.
XML_MEDIA_TYPES: Final = frozenset({"text/xml", "application/xml", "text/html"})
TEXT_MEDIA_TYPES: Final = frozenset({"text/plain"})
AUDIO_MEDIA_TYPES: Final = frozenset(
    {
        "audio/mpeg", "audio/mp3", "audio/wav", "audio/wave", "audio/x-wav",
        "audio/aiff", "audio/x-aifc", "audio/x-aiff", "audio/x-gsm", "audio/gsm",
        "audio/ulaw",
    }
)  # fmt: skip


def _xml_parser() -> etree.XMLParser:
    # A new parser per document: lxml parsers carry state between feeds, and
    # building one costs microseconds.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )


def _parse_xml(data: bytes, url: str) -> etree._Element:
    try:
        root = etree.fromstring(data, _xml_parser())
    except etree.XMLSyntaxError as exc:
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE,
            f"not well-formed XML: {exc.msg}"[:300],
            line=exc.lineno,
            url=url,
        ) from None
    if root is None:  # lxml returns None only in recover mode; never trust it
        raise TwimlError(DOCUMENT_PARSE_FAILURE, "empty document", url=url)
    info = root.getroottree().docinfo
    # Any DOCTYPE gives an internal subset node, even "<!DOCTYPE Response>".
    if info.internalDTD is not None or info.externalDTD is not None or info.system_url:
        raise TwimlError(
            DOCUMENT_PARSE_FAILURE,
            "DOCTYPE, DTD and entity declarations are refused",
            line=1,
            url=url,
        )
    return root


def parse_twiml(
    data: bytes, *, url: str, restricted: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> Response:
    """Parse one TwiML document fetched from ``url``.

    ``restricted`` is for waitUrl, hold and announce documents: only Play,
    Say, Pause and Redirect are allowed. Relative URLs in the document are
    resolved against ``url``.
    """
    if len(data) > max_bytes:
        raise TwimlError(
            RESPONSE_TOO_LARGE,
            f"TwiML response body too large ({len(data)} bytes > {max_bytes})",
            url=url,
        )
    root = _parse_xml(data, url)
    return build_response(root, Document(url=url, restricted=restricted))


def _split_content_type(content_type: str | None) -> tuple[str, str | None]:
    """(media type in lower case, charset or None) of a Content-Type header."""
    if not content_type:
        return "", None
    media_type, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media_type.strip().lower(), charset


def _spoken_document(body: bytes, charset: str | None, url: str, max_bytes: int) -> Response:
    """A text/plain answer, as Twilio treats it: one <Say> of the body."""
    if len(body) > max_bytes:
        raise TwimlError(
            RESPONSE_TOO_LARGE, f"response body too large ({len(body)} bytes)", url=url
        )
    try:
        # text/plain defaults to US-ASCII by RFC; UTF-8 is its superset and
        # what servers mean when they forget the parameter.
        text = body.decode(charset or "utf-8")
    except LookupError:
        raise TwimlError(INVALID_CONTENT_TYPE, f"unknown charset {charset!r}", url=url) from None
    except UnicodeDecodeError as exc:
        reason = f"undecodable text: {exc.reason}"
        raise TwimlError(DOCUMENT_PARSE_FAILURE, reason, url=url) from None
    try:
        text = values.check_length(
            values.check_text(text, allow_newlines=True).strip(), values.MAX_SAY_LENGTH
        )
    except values.InvalidValue as exc:
        raise TwimlError(SCHEMA_VALIDATION, exc.reason, element="Say", line=1, url=url) from None
    if not text:
        return Response(verbs=(), url=url, line=1)
    return Response(verbs=(Say(text, None, None, 1, line=1),), url=url, line=1)


def classify_response(
    status_code: int,
    content_type: str | None,
    body: bytes,
    url: str,
    *,
    restricted: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Response | Audio:
    """Decide what an HTTP answer to a TwiML/waitUrl/Play request means.

    ``url`` is the final URL (after HTTP redirects): relative URLs resolve
    against it and audio is played from it. The audio body is not inspected
    (and not capped: 11750 is about TwiML).
    """
    if not 200 <= status_code <= 299:
        raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"HTTP status {status_code}", url=url)
    media_type, charset = _split_content_type(content_type)
    if media_type in AUDIO_MEDIA_TYPES:
        return Audio(url=url, media_type=media_type)
    if media_type in XML_MEDIA_TYPES:
        return parse_twiml(body, url=url, restricted=restricted, max_bytes=max_bytes)
    if media_type in TEXT_MEDIA_TYPES:
        return _spoken_document(body, charset, url, max_bytes)
    shown = (content_type or "none")[:100]
    raise TwimlError(INVALID_CONTENT_TYPE, f"invalid Content-Type {shown!r}", url=url)
