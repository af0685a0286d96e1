"""Dialplan targets: what a loopback B-leg or a placed call runs.

``fs.dialplan[ext]`` holds one of these (the captures' extensions: ``talk``,
``silent``, ``fsconf_sock_<port>``, ``3000``). A plain list of ``(app, arg)``
pairs is accepted too. An extension that is not in ``fs.dialplan`` runs
:class:`VanillaCatchAll`, as the captured switch's vanilla dialplan did.
"""

from __future__ import annotations

import time
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


_PASSWORD_WARNING = "CRIT " + "WARNING " * 9


@dataclass(frozen=True)
class VanillaCatchAll:
    """What the vanilla ``default`` context runs for an extension nothing else matches.

    Copied from errors.jsonl (``originate loopback/nosuchext/default``, the B-leg): the
    ``continue="true"`` extensions ``tod_example`` (``set open=true`` on weekdays 09-18
    local time: ``wday="2-6" hour="9-18"``) and ``global`` (the default-password warning:
    four ``log`` lines and ``sleep 10000`` while ``default_password`` is ``1234``), then the
    last extension, ``acknowledge_call``: ``acknowledge_call``, ``ring_ready``,
    ``playback $${hold_music}``. The dialplan then ends, so the channel hangs up
    NORMAL_CLEARING (the FakeSwitch does that; no app here hangs up).
    """

    office_hours: bool
    default_password: str
    conf_dir: str = "/srv/fswitch/conf"
    hold_music: str = "local_stream://moh"

    def apps(self) -> list[tuple[str, str]]:
        apps: list[tuple[str, str]] = []
        if self.office_hours:
            apps.append(("set", "open=true"))
        # the vanilla default that vars.xml ships with, not a secret of ours
        if self.default_password == "1234":  # noqa: S105
            apps += [
                ("log", _PASSWORD_WARNING),
                ("log", f"CRIT Open {self.conf_dir}/vars.xml and change the default_password."),
                ("log", "CRIT Once changed type 'reloadxml' at the console."),
                ("log", _PASSWORD_WARNING),
                ("sleep", "10000"),
            ]
        return [*apps, ("acknowledge_call", ""), ("ring_ready", ""), ("playback", self.hold_music)]


def office_hours(local: time.struct_time) -> bool:
    """``tod_example``'s condition ``wday="2-6" hour="9-18"`` (FreeSWITCH counts
    weekdays from Sunday = 1, so 2-6 is Monday to Friday; both hour bounds included)."""
    return local.tm_wday <= 4 and 9 <= local.tm_hour <= 18


def apps_of(target: object) -> list[tuple[str, str]]:
    if isinstance(target, list):
        return [(str(a), str(b)) for a, b in target]
    apps = getattr(target, "apps", None)
    if apps is None:
        raise TypeError(f"not a dialplan target: {target!r}")
    result: list[tuple[str, str]] = apps()
    return result
