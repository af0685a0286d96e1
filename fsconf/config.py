"""Settings: the ``FSCONF_*`` environment, optionally from an INI file.

Theory of operation
-------------------
Operators' runbooks depend on these names (DESIGN.md, "Operator interface"),
so they are listed once, in :data:`KEYS`, with their defaults. An INI file
(``--config`` or ``FSCONF_CONFIG``) may set the same keys in a ``[fsconf]``
section; the environment always wins over the file.

Secrets (the auth token, ESL passwords) never appear in ``repr`` or logs.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fsconf.errors import ConfigError

KEYS: dict[str, str] = {
    "FSCONF_DATABASE_URL": "sqlite:///fsconf.db",
    "FSCONF_ESL": "127.0.0.1:8021:ClueCon",
    "FSCONF_OUTBOUND_LISTEN": "127.0.0.1:8084",
    "FSCONF_HTTP_LISTEN": "127.0.0.1:8080",
    "FSCONF_PUBLIC_URL": "",
    "FSCONF_ACCOUNT_SID": "",
    "FSCONF_AUTH_TOKEN": "",
    "FSCONF_VOICE_URL": "",
    "FSCONF_VOICE_METHOD": "POST",
    "FSCONF_DIAL_STRING": "loopback/{to}/default",
    "FSCONF_DIALOUT_SOCKET": "",
    "FSCONF_OUTBOUND_ALLOW": "",
}
"""``FSCONF_DIAL_STRING``: how a dial-out (Participants create) reaches its To;
``{to}`` is replaced by the validated To (``+15551234567``, ``sip:a@b``,
``client:name``). The default hands it to FreeSWITCH's own dialplan (context
``default``). ``FSCONF_DIALOUT_SOCKET``: the ``host:port`` at which FreeSWITCH
reaches fsconf's outbound server for an answered dial-out (default: the
``FSCONF_OUTBOUND_LISTEN`` address). ``FSCONF_OUTBOUND_ALLOW``: the addresses
allowed to connect to the outbound server, comma-separated (default: the hosts
of ``FSCONF_ESL``; ``*`` allows any)."""

DIAL_STRING_CHARS = re.compile(r"[A-Za-z0-9_.+@:/=-]*")


@dataclass(frozen=True, slots=True)
class EslNode:
    host: str
    port: int
    password: str = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    # URLs may embed passwords (postgresql://user:pw@..., https://user:pw@...):
    # kept out of repr like the other secrets.
    database_url: str = field(repr=False)
    esl_nodes: tuple[EslNode, ...]
    outbound_listen: tuple[str, int]
    http_listen: tuple[str, int]
    public_url: str
    account_sid: str
    auth_token: str = field(repr=False)
    voice_url: str = field(repr=False)
    voice_method: str
    dial_string: str = KEYS["FSCONF_DIAL_STRING"]
    dialout_socket: tuple[str, int] | None = None
    outbound_allow: tuple[str, ...] = ()


def parse_dial_string(value: str) -> str:
    """A dial string template: one ``{to}``, and only dial-string characters
    around it (no spaces, quotes, braces or ``$``)."""
    before, sep, after = value.partition("{to}")
    if not sep or "{to}" in after:
        raise ConfigError(f"FSCONF_DIAL_STRING must contain {{to}} exactly once, got {value!r}")
    if not (DIAL_STRING_CHARS.fullmatch(before) and DIAL_STRING_CHARS.fullmatch(after)):
        raise ConfigError(
            f"FSCONF_DIAL_STRING may only hold letters, digits and _.+@:/=- around {{to}},"
            f" got {value!r}"
        )
    if "/" not in before:
        raise ConfigError(f"FSCONF_DIAL_STRING must start with an endpoint type, got {value!r}")
    return value


def parse_address(name: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


def parse_esl_nodes(value: str) -> tuple[EslNode, ...]:
    nodes = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, sep1, rest = item.partition(":")
        port, sep2, password = rest.partition(":")
        if not (sep1 and sep2 and host and port.isdigit() and password):
            # Never echo the item: it holds a password.
            raise ConfigError("FSCONF_ESL must be host:port:password[,host:port:password...]")
        nodes.append(EslNode(host, int(port), password))
    if not nodes:
        raise ConfigError("FSCONF_ESL names no FreeSWITCH node")
    return tuple(nodes)


def _raw_values(environ: Mapping[str, str], config_file: str | None) -> dict[str, str]:
    values = dict(KEYS)
    path = config_file or environ.get("FSCONF_CONFIG")
    if path:
        parser = configparser.ConfigParser()
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        if not parser.read(path):
            raise ConfigError(f"cannot read config file {path}")
        section = parser["fsconf"] if parser.has_section("fsconf") else {}
        for key in KEYS:
            if key in section:
                values[key] = section[key]
    for key in KEYS:
        if key in environ:
            values[key] = environ[key]
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | None = None
) -> Settings:
    values = _raw_values(os.environ if environ is None else environ, config_file)
    http_listen = parse_address("FSCONF_HTTP_LISTEN", values["FSCONF_HTTP_LISTEN"])
    public_url = (
        values["FSCONF_PUBLIC_URL"].rstrip("/") or f"http://{http_listen[0]}:{http_listen[1]}"
    )
    if urlsplit(public_url).scheme not in ("http", "https"):
        raise ConfigError(f"FSCONF_PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    method = values["FSCONF_VOICE_METHOD"].upper()
    if method not in ("GET", "POST"):
        raise ConfigError(f"FSCONF_VOICE_METHOD must be GET or POST, got {method!r}")
    return Settings(
        database_url=values["FSCONF_DATABASE_URL"],
        esl_nodes=parse_esl_nodes(values["FSCONF_ESL"]),
        outbound_listen=parse_address("FSCONF_OUTBOUND_LISTEN", values["FSCONF_OUTBOUND_LISTEN"]),
        http_listen=http_listen,
        public_url=public_url,
        account_sid=values["FSCONF_ACCOUNT_SID"],
        auth_token=values["FSCONF_AUTH_TOKEN"],
        voice_url=values["FSCONF_VOICE_URL"],
        voice_method=method,
        dial_string=parse_dial_string(values["FSCONF_DIAL_STRING"]),
        dialout_socket=parse_address("FSCONF_DIALOUT_SOCKET", values["FSCONF_DIALOUT_SOCKET"])
        if values["FSCONF_DIALOUT_SOCKET"]
        else None,
        outbound_allow=tuple(
            item.strip() for item in values["FSCONF_OUTBOUND_ALLOW"].split(",") if item.strip()
        ),
    )
