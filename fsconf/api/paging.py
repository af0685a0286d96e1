"""Twilio-style list paging: ``Page``, ``PageSize``, ``PageToken``.

Theory of operation
-------------------
A list answer carries exactly one records key (``conferences``,
``participants``, ``recordings``) and Twilio's meta keys: ``page``,
``page_size``, ``start``, ``end``, ``uri``, ``first_page_uri``,
``next_page_uri`` and ``previous_page_uri``.  The helper libraries follow
``next_page_uri`` (relative to the API root) until it is ``null``.

Pages are cut by *keyset*, not by offset, whenever a ``PageToken`` is given:
the token names the sort key of the last (``PA...``, next page) or first
(``PB...``, previous page) record already seen, so rows created or deleted
between two requests neither repeat nor vanish from the walk.  A request with
``Page=N`` and no token (a hand-written URL) falls back to ``OFFSET N*size``.

Each list has one total order (a :class:`Keyset`, ending with a unique
column), so the keyset conditions are exact.  The lexicographic "after"
condition is expanded into ``OR``/``AND`` terms rather than a row-value
comparison so that every column binds through its own type (``UTCDateTime``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session
from werkzeug.datastructures import MultiDict

from fsconf.api import params
from fsconf.api.errors import ParameterError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_PAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class Keyset:
    """The total order of one list: columns (the last one unique) and direction."""

    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool

    def key(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, column.key) for column in self.columns)

    def order_by(self, *, reverse: bool = False) -> list[Any]:
        descending = self.descending != reverse
        return [column.desc() if descending else column.asc() for column in self.columns]

    def beyond(self, values: Sequence[Any], *, backwards: bool) -> Any:
        """Rows strictly after ``values`` in this order (before, if ``backwards``)."""
        descending = self.descending != backwards
        terms = []
        for index, column in enumerate(self.columns):
            equal = [self.columns[i] == values[i] for i in range(index)]
            step = column < values[index] if descending else column > values[index]
            terms.append(and_(*equal, step))
        return or_(*terms)


@dataclass(frozen=True, slots=True)
class PageToken:
    backwards: bool
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int
    page_size: int
    token: PageToken | None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    has_next: bool
    has_previous: bool


def _encode_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode_value(kind: type, value: Any) -> Any:
    if kind is datetime:
        moment = datetime.fromisoformat(value)
        # Our tokens always carry UTC; a naive one was not made by us and would
        # fail in the database (500) instead of being refused (400).
        if moment.tzinfo is None:
            raise ValueError(value)
        return moment
    if not isinstance(value, kind):
        raise TypeError(value)
    return value


def encode_token(values: Sequence[Any], *, backwards: bool) -> str:
    raw = json.dumps([_encode_value(value) for value in values], separators=(",", ":"))
    payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return ("PB" if backwards else "PA") + payload


def decode_token(token: str, kinds: Sequence[type]) -> PageToken:
    bad = ParameterError(params.INVALID_PARAMETER, "PageToken", f"Invalid PageToken: {token!r}")
    if len(token) > 1024 or token[:2] not in ("PA", "PB"):
        raise bad
    payload = token[2:]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        decoded = json.loads(raw)
        if not isinstance(decoded, list) or len(decoded) != len(kinds):
            raise bad
        values = tuple(
            _decode_value(kind, value) for kind, value in zip(kinds, decoded, strict=True)
        )
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    return PageToken(backwards=token.startswith("PB"), values=values)


def parse_request(args: MultiDict[str, str], kinds: Sequence[type]) -> PageRequest:
    page_size = params.integer(args, "PageSize", low=1, high=MAX_PAGE_SIZE)
    page = params.integer(args, "Page", low=0, high=MAX_PAGE)
    token = args.get("PageToken")
    return PageRequest(
        page=page or 0,
        page_size=page_size or DEFAULT_PAGE_SIZE,
        token=decode_token(token, kinds) if token else None,
    )


def fetch(session: Session, query: Select[Any], keyset: Keyset, request: PageRequest) -> Page:
    size = request.page_size
    token = request.token
    if token is None:
        rows = list(
            session.scalars(
                query.order_by(*keyset.order_by()).offset(request.page * size).limit(size + 1)
            )
        )
        return Page(rows=rows[:size], has_next=len(rows) > size, has_previous=request.page > 0)
    query = query.where(keyset.beyond(token.values, backwards=token.backwards))
    rows = list(
        session.scalars(query.order_by(*keyset.order_by(reverse=token.backwards)).limit(size + 1))
    )
    more = len(rows) > size
    rows = rows[:size]
    if token.backwards:
        rows.reverse()
        return Page(rows=rows, has_next=True, has_previous=more)
    return Page(rows=rows, has_next=more, has_previous=True)


def _uri(path: str, filters: Sequence[tuple[str, str]], extra: Sequence[tuple[str, Any]]) -> str:
    return f"{path}?{urlencode([*filters, *extra])}"


def envelope(
    *,
    records_key: str,
    records: list[dict[str, Any]],
    page: Page,
    request: PageRequest,
    keyset: Keyset,
    path: str,
    filters: Sequence[tuple[str, str]],
    current_uri: str,
) -> dict[str, Any]:
    """The list body: the records under ``records_key`` and Twilio's meta keys."""
    size = request.page_size
    start = request.page * size
    next_uri = previous_uri = None
    if page.has_next and page.rows:
        token = encode_token(keyset.key(page.rows[-1]), backwards=False)
        next_uri = _uri(
            path, filters, [("PageSize", size), ("Page", request.page + 1), ("PageToken", token)]
        )
    if page.has_previous and request.page > 0:
        extra: list[tuple[str, Any]] = [("PageSize", size), ("Page", request.page - 1)]
        if page.rows:
            extra.append(("PageToken", encode_token(keyset.key(page.rows[0]), backwards=True)))
        previous_uri = _uri(path, filters, extra)
    return {
        records_key: records,
        "first_page_uri": _uri(path, filters, [("PageSize", size), ("Page", 0)]),
        "next_page_uri": next_uri,
        "previous_page_uri": previous_uri,
        "page": request.page,
        "page_size": size,
        "start": start,
        "end": start + max(len(records), 1) - 1,
        "uri": current_uri,
    }


def list_body(
    session: Session,
    *,
    args: MultiDict[str, str],
    query: Select[Any],
    keyset: Keyset,
    key_types: Sequence[type],
    filters: Sequence[tuple[str, str]],
    records_key: str,
    serialize: Callable[[Any], dict[str, Any]],
    path: str,
    current_uri: str,
) -> dict[str, Any]:
    """Parse the paging parameters, read one page and build the list body."""
    request = parse_request(args, key_types)
    page = fetch(session, query, keyset, request)
    return envelope(
        records_key=records_key,
        records=[serialize(row) for row in page.rows],
        page=page,
        request=request,
        keyset=keyset,
        path=path,
        filters=filters,
        current_uri=current_uri,
    )
