"""Extract event header templates from the real-switch captures.

Run at development time only (the package never reads ``tests/data``)::

    python -m fsconf.testing.make_templates tests/data fsconf/testing/data/templates.json

For every event key (the ``Action`` of a conference::maintenance event, else the
``Event-Name``) the richest captured sample gives the header order. Runs of
headers that depend on the model are folded into markers, expanded at run
time by :mod:`fsconf.testing.eventsets`:

* ``@channel``   the channel block (Channel-State ... Caller-Privacy-Hide-Number;
  a hung-up channel gets ``Hangup-Cause`` after ``Answer-State``). A loopback leg's
  block and a SIP (``sofia/``) channel's block differ (``Channel-Presence-ID``,
  ``Caller-Username``, ``Caller-Network-Addr``), so both are kept;
* ``@variables`` the channel's ``variable_*`` headers;
* ``@confvars``  conference variables (``conference_sid``, setvar), always right
  after ``Conference-Unique-ID``;
* ``@playvars``  the ``{vars}`` of a conference play.

Everything else is a literal ``[name, sample value, optional]``; a header is
optional when some sample of that key lacks it.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from urllib.parse import unquote

_CHANNEL_BLOCK_START = "Channel-State"
_CHANNEL_NAMES_PREFIX = ("Channel-", "Caller-")
_CHANNEL_NAMES = {"Unique-ID", "Call-Direction", "Presence-Call-Direction", "Answer-State",
                  "Hangup-Cause"}
_PLAY_KNOWN = {"seconds", "milliseconds", "samples"}


def _items(raw: str) -> list[tuple[str, str]] | None:
    head, _, body = raw.partition("\n\n")
    outer = dict(line.split(": ", 1) for line in head.split("\n") if ": " in line)
    if outer.get("Content-Type") != "text/event-plain":
        return None
    inner = body.partition("\n\n")[0]
    result = []
    for line in inner.split("\n"):
        if line:
            name, _, value = line.partition(": ")
            result.append((name, unquote(value)))
    return result


def _in_channel_block(name: str) -> bool:
    return name.startswith(_CHANNEL_NAMES_PREFIX) or name in _CHANNEL_NAMES


def tokens(items: list[tuple[str, str]], key: str) -> list[object]:
    out: list[object] = []
    i = 0
    while i < len(items):
        name, value = items[i]
        if name == "Content-Length":
            i += 1
        elif name == _CHANNEL_BLOCK_START and key != "CHANNEL_DATA":
            while i < len(items) and _in_channel_block(items[i][0]):
                i += 1
            out.append("@channel")
        elif name.startswith("variable_"):
            while i < len(items) and items[i][0].startswith("variable_"):
                i += 1
            out.append("@variables")
        elif name == "Conference-Unique-ID":
            out.append([name, value])
            out.append("@confvars")
            i += 1
            while i < len(items) and items[i][0][:1].islower() and items[i][0] not in _PLAY_KNOWN:
                i += 1
        elif key.startswith("play-file") and name[:1].islower() and name not in _PLAY_KNOWN:
            while i < len(items) and items[i][0][:1].islower() and items[i][0] not in _PLAY_KNOWN:
                i += 1
            out.append("@playvars")
        else:
            out.append([name, value])
            i += 1
    return out


def _block_of(items: list[tuple[str, str]]) -> list[list[str]]:
    """The channel block of one answered event, ``Hangup-Cause`` left out."""
    start = [n for n, _ in items].index(_CHANNEL_BLOCK_START)
    end = start
    while end < len(items) and _in_channel_block(items[end][0]):
        end += 1
    return [[n, v] for n, v in items[start:end] if n != "Hangup-Cause"]


def build(capture_dir: str) -> dict[str, object]:
    samples: dict[str, list[list[object]]] = {}
    channel_block: list[list[str]] = []
    sofia_block: list[list[str]] = []
    for path in sorted(glob.glob(os.path.join(capture_dir, "*.jsonl"))):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if record["dir"] != "in":
                    continue
                raw = record["raw"]
                if "Event-Name: CHANNEL_DATA" in raw.partition("\n\n")[0] + "\n":
                    items = [
                        (n, unquote(v))
                        for n, _, v in (x.partition(": ") for x in raw.split("\n") if x)
                    ]
                    samples.setdefault("CHANNEL_DATA", []).append(tokens(items, "CHANNEL_DATA"))
                    continue
                items = _items(raw)
                if items is None:
                    continue
                headers = dict(items)
                key = headers.get("Action") or headers.get("Event-Name", "")
                if headers.get("Event-Name") == "CUSTOM" and "Action" not in headers:
                    continue
                samples.setdefault(key, []).append(tokens(items, key))
                if key == "CHANNEL_ANSWER":
                    sofia = headers.get("Channel-Name", "").startswith("sofia/")
                    if sofia and not sofia_block:
                        sofia_block = _block_of(items)
                    elif not sofia and not channel_block:
                        channel_block = _block_of(items)
    templates: dict[str, object] = {}
    for key, variants in sorted(samples.items()):
        best = max(variants, key=len)
        names_in_all = None
        for variant in variants:
            names = {t[0] for t in variant if isinstance(t, list)}
            names_in_all = names if names_in_all is None else names_in_all & names
        template = []
        for token in best:
            if isinstance(token, list):
                template.append([token[0], token[1], token[0] not in (names_in_all or set())])
            else:
                template.append(token)
        templates[key] = template
    return {
        "channel_block": channel_block,
        "sofia_channel_block": sofia_block,
        "events": templates,
        "api": _api_bodies(capture_dir, ("conference", "version", "status")),
    }


def _api_bodies(capture_dir: str, commands: tuple[str, ...]) -> dict[str, str]:
    """The first captured api/response body of each bare command (help texts)."""
    found: dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(capture_dir, "*.jsonl"))):
        last = None
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                raw = record["raw"]
                if record["dir"] == "out":
                    last = raw.strip()
                    continue
                if last and raw.startswith("Content-Type: api/response"):
                    command = last[len("api "):] if last.startswith("api ") else None
                    if command in commands and command not in found:
                        found[command] = raw.partition("\n\n")[2]
                last = None
    return found


# $${vars} of the captured switch's vars.xml that the conference profiles use
_PRESET_VARS = {
    "domain": "127.0.0.1",
    "hold_music": "local_stream://moh",
    "outbound_caller_name": "FreeSWITCH",
    "outbound_caller_id": "0000000000",
    "recordings_dir": "/srv/fswitch/rec",
}
_SOUND_DIR = "/srv/fswitch/fs/share/freeswitch/sounds/en/us/callie/"


def profiles(capture_dir: str) -> dict[str, dict[str, str]]:
    """The conference profiles of ``conference.conf.xml`` (params, ``$${vars}`` expanded).

    Sound params that are relative paths get the switch's sound prefix, as mod_conference
    reports them in ``File`` headers.
    """
    import re
    import xml.etree.ElementTree as ET

    tree = ET.parse(os.path.join(capture_dir, "conference.conf.xml"))  # noqa: S314
    out: dict[str, dict[str, str]] = {}
    for profile in tree.getroot().iter("profile"):
        params: dict[str, str] = {}
        for param in profile.iter("param"):
            name, value = param.get("name", ""), param.get("value", "")
            value = re.sub(r"\$\$\{(\w+)\}", lambda m: _PRESET_VARS.get(m.group(1), ""), value)
            relative = "://" not in value and not value.startswith("/")
            if name.endswith("-sound") and value and relative:
                value = _SOUND_DIR + value
            params[name] = value
        out[profile.get("name", "")] = params
    return out


def conference_conf_xml(capture_dir: str) -> str:
    """``<configuration name="conference.conf">`` as ``xml_locate`` prints it (no comments)."""
    import re

    with open(os.path.join(capture_dir, "conference.conf.xml"), encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"\$\$\{(\w+)\}", lambda m: _PRESET_VARS.get(m.group(1), ""), text)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "<configuration" in line)
    return "\n".join(lines[start:]) + "\n"


def main(argv: list[str]) -> int:
    """``make_templates <capture dir> <templates.json> [<profiles.json>]``."""
    capture_dir, output = argv[1], argv[2]
    if len(argv) > 3:
        data_out: dict[str, object] = {
            "profiles": profiles(capture_dir),
            "conference_conf_xml": conference_conf_xml(capture_dir),
        }
        with open(argv[3], "w", encoding="utf-8") as handle:
            json.dump(data_out, handle, indent=0, sort_keys=True)
            handle.write("\n")
        if output == "-":
            return 0
    data = build(capture_dir)
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=0, sort_keys=True)
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
