"""Dialplan targets: what a loopback B-leg or a placed call runs.

``fs.dialplan[ext]`` holds one of these (the captures' extensions: ``talk``,
``silent``, ``fsconf_sock_<port>``, ``3000``). A plain list of ``(app, arg)``
pairs is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Talk:
    """answer + a looping tone (start/stop-talking come from the control API)."""

    def apps(self) -> list[tuple[str, str]]:
        return [("answer", ""), ("playback", "tone_stream://%(800,1200,440);loops=-1")]


@dataclass(frozen=True)
class Silent:
    """answer + park."""

    def apps(self) -> list[tuple[str, str]]:
        return [("answer", ""), ("park", "")]


@dataclass(frozen=True)
class Socket:
    """``socket host:port async full``: the channel is handed to an outbound listener."""

    address: tuple[str, int]

    def apps(self) -> list[tuple[str, str]]:
        return [("socket", f"{self.address[0]}:{self.address[1]} async full")]


@dataclass(frozen=True)
class Conference:
    """answer + ``conference <arg>`` (e.g. ``test@default``)."""

    arg: str

    def apps(self) -> list[tuple[str, str]]:
        return [("answer", ""), ("conference", self.arg)]


def apps_of(target: object) -> list[tuple[str, str]]:
    if isinstance(target, list):
        return [(str(a), str(b)) for a, b in target]
    apps = getattr(target, "apps", None)
    if apps is None:
        raise TypeError(f"not a dialplan target: {target!r}")
    result: list[tuple[str, str]] = apps()
    return result
