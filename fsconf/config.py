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
}


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
    database_url: str
    esl_nodes: tuple[EslNode, ...]
    outbound_listen: tuple[str, int]
    http_listen: tuple[str, int]
    public_url: str
    account_sid: str
    auth_token: str = field(repr=False)
    voice_url: str
    voice_method: str


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
    )
