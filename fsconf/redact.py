"""What may be written to a log about a URL.

URLs come from customers' TwiML and REST requests, and may carry secrets: a
``user:password@`` in the authority (Twilio supports it for callbacks) or
tokens in the query string. Logs keep ``scheme://host[:port]/path``, enough to
debug a failing request, and never the rest.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def log_url(url: str | None) -> str:
    """``scheme://host[:port]/path``: no credentials, no query, no fragment."""
    if not url:
        return "''" if url == "" else "-"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme:
        return "<not a URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"
