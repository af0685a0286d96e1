"""``fsconf doctor``: the checks on the exact replies of a real FreeSWITCH, and
the command end to end against ESL servers on loopback.

The replies below are what FreeSWITCH 1.10/1.11 answers (``tests/data``
captures for ``status``/``version``/``show modules``; ``mod_commands.c`` for
``module_exists`` "true"/"false", ``global_getvar`` (the bare value; an empty
output arrives as "-ERR no reply") and ``xml_locate`` (the element's XML, or
"can't find anything")).  The scripted ESL server (tests/esl/scripted_server.py)
plays them; the FakeSwitch does not implement ``global_getvar`` and
``xml_locate`` yet (asked for in tests/fakeswitch/NOTES_FROM_CONFORMANCE.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fsconf.config import EslNode
from fsconf.esl.codec import encode_api_response
from fsconf.esl.frames import ClientCommand
from fsconf.ops import doctor
from fsconf.ops.doctor import Status
from tests.cli.conftest import Invoke, closed_port
from tests.esl.scripted_server import ScriptedConnection, ScriptedSwitch

DATA = Path(__file__).resolve().parent.parent / "data"
STATUS = (DATA / "status.txt").read_text()
VERSION = (DATA / "version.txt").read_text()
SHOW_MODULES = (DATA / "show_modules.txt").read_text()
NODE = "127.0.0.1:8021"

CONFERENCE_CONF = """<configuration name="conference.conf" description="Audio Conference">
  <caller-controls>
    <group name="default">
      <control action="mute" digits="0"/>
      <control action="hangup" digits="#"/>
    </group>
    <group name="fsconf-none">
    </group>
    <group name="fsconf-hangup-on-star">
      <control action="hangup" digits="*"/>
    </group>
  </caller-controls>
  <profiles>
    <profile name="default">
      <param name="domain" value="127.0.0.1"/>
      <param name="tts-engine" value="flite"/>
      <param name="moh-sound" value="local_stream://moh"/>
    </profile>
    <profile name="fsconf">
      <param name="domain" value="127.0.0.1"/>
      <param name="rate" value="8000"/>
      <param name="caller-controls" value="fsconf-none"/>
      <param name="comfort-noise" value="true"/>
    </profile>
  </profiles>
</configuration>"""

VANILLA_ONLY = """<configuration name="conference.conf" description="Audio Conference">
  <caller-controls>
    <group name="default">
      <control action="mute" digits="0"/>
    </group>
  </caller-controls>
  <profiles>
    <profile name="default">
      <param name="domain" value="127.0.0.1"/>
    </profile>
  </profiles>
</configuration>"""

WARNING_EXTENSION = """
    <extension name="global" continue="true">
      <condition field="${call_debug}" expression="^true$" break="never">
        <action application="info"/>
      </condition>
      <condition field="${default_password}" expression="^1234$" break="never">
        <action application="log" data="CRIT WARNING WARNING WARNING"/>
        <action application="log" data="CRIT Open vars.xml and change the default_password."/>
        <action application="sleep" data="10000"/>
      </condition>
    </extension>"""
FSCONF_EXTENSION = """
    <extension name="fsconf">
      <condition field="destination_number" expression="^(\\+?1?5550\\d{6})$">
        <action application="socket" data="127.0.0.1:8084 async full"/>
      </condition>
    </extension>"""


def context(*extensions: str) -> str:
    return f'<context name="default">{"".join(extensions)}\n  </context>'


GOOD = {
    "version": VERSION,
    "module_exists mod_conference": "true",
    "module_exists mod_event_socket": "true",
    "module_exists mod_http_cache": "true",
    "module_exists mod_flite": "true",
    "module_exists mod_tts_commandline": "false",
    "module_exists mod_cepstral": "false",
    "module_exists mod_unimrcp": "false",
    "show modules": SHOW_MODULES,
    "xml_locate configuration configuration name conference.conf": CONFERENCE_CONF,
    "global_getvar default_password": "s3cure-Pa55",
    "xml_locate dialplan context name default": context(FSCONF_EXTENSION, WARNING_EXTENSION),
    "status": STATUS.replace("out of max 30", "out of max 200"),
}


def fake_api(replies: dict[str, str]) -> Callable[[str], str]:
    def api(text: str) -> str:
        return replies.get(text, f"-ERR {text.split()[0]} Command not found!\n")

    return api


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {check.name: check for check in checks}


# --- the checks, pure ------------------------------------------------------------------


def test_a_well_configured_switch_is_all_ok() -> None:
    checks = doctor.node_checks(NODE, fake_api(GOOD))
    assert [(c.name, c.status) for c in checks] == [
        ("mod_conference", Status.OK),
        ("mod_event_socket", Status.OK),
        ("mod_http_cache", Status.OK),
        ("tts", Status.OK),
        ("profile fsconf", Status.OK),
        ("caller-controls fsconf-none", Status.OK),
        ("caller-controls fsconf-hangup-on-star", Status.OK),
        ("default_password", Status.OK),
        ("sessions-per-second", Status.OK),
    ]
    assert doctor.exit_code(checks) == 0


def test_a_missing_module_fails_with_the_file_to_fix() -> None:
    check = doctor.check_module(NODE, "mod_http_cache", "false", "plays URLs")
    assert check.status is Status.FAIL
    assert check.detail == "not loaded"
    assert 'load module="mod_http_cache"' in check.fix
    assert "autoload_configs/modules.conf.xml" in check.fix
    odd = doctor.check_module(NODE, "mod_conference", "-ERR no reply\n")
    assert odd.status is Status.FAIL and "-ERR no reply" in odd.detail


def test_tts_from_show_modules_when_flite_is_absent() -> None:
    assert doctor.speech_engines(SHOW_MODULES) == [("flite", "mod_flite")]
    other = SHOW_MODULES.replace("speech,flite,mod_flite", "speech,polly,mod_polly")
    warn = doctor.check_tts(NODE, [], other)
    assert warn.status is Status.WARN and "polly (mod_polly)" in warn.detail
    none = SHOW_MODULES.replace("speech,flite,mod_flite", "file,flite,mod_flite")
    fail = doctor.check_tts(NODE, [], none)
    assert fail.status is Status.FAIL and "mod_flite" in fail.fix
    assert doctor.check_tts(NODE, [], "-USAGE: codec|endpoint\n").status is Status.FAIL
    assert doctor.check_tts(NODE, ["mod_tts_commandline"], None).status is Status.WARN


def test_conference_conf_not_found() -> None:
    checks = doctor.check_conference_config(NODE, "can't find anything\n")
    assert [c.status for c in checks] == [Status.FAIL] * 3
    assert all("conference.conf.xml" in c.fix and "reloadxml" in c.fix for c in checks)


def test_vanilla_conference_conf_misses_the_profile_and_groups() -> None:
    checks = by_name(doctor.check_conference_config(NODE, VANILLA_ONLY))
    assert checks["profile fsconf"].status is Status.FAIL
    assert checks["caller-controls fsconf-none"].status is Status.FAIL
    assert checks["caller-controls fsconf-hangup-on-star"].status is Status.FAIL


def test_a_noisy_fsconf_profile_warns() -> None:
    noisy = CONFERENCE_CONF.replace(
        '<param name="rate" value="8000"/>',
        '<param name="rate" value="8000"/><param name="tts-engine" value="flite"/>'
        '<param name="alone-sound" value="conference/conf-alone.wav"/>',
    )
    check = by_name(doctor.check_conference_config(NODE, noisy))["profile fsconf"]
    assert check.status is Status.WARN
    assert "alone-sound, tts-engine" in check.detail


def test_unreadable_conference_conf_fails() -> None:
    checks = doctor.check_conference_config(NODE, "-ERR xml_locate Command not found!\n")
    assert [c.status for c in checks] == [Status.FAIL] * 3
    assert "cannot read conference.conf" in checks[0].detail
    assert doctor.check_conference_config(NODE, "<configuration")[0].status is Status.FAIL


def test_default_password() -> None:
    assert doctor.check_default_password(NODE, "s3cure").status is Status.OK
    assert doctor.check_default_password(NODE, "-ERR no reply\n").detail == "not set"
    unknown = doctor.check_default_password(NODE, "1234")
    assert unknown.status is Status.WARN and "sleep 10 s" in unknown.detail
    first = doctor.check_default_password(
        NODE, "1234", context(FSCONF_EXTENSION, WARNING_EXTENSION)
    )
    assert first.status is Status.WARN and "fsconf's extension comes first" in first.detail
    late = doctor.check_default_password(NODE, "1234", context(WARNING_EXTENSION, FSCONF_EXTENSION))
    assert late.status is Status.FAIL
    assert "every call waits 10 s" in late.detail
    assert "vars.xml" in late.fix and "00_fsconf.xml" in late.fix
    unreadable = doctor.check_default_password(NODE, "-ERR global_getvar Command not found!")
    assert unreadable.status is Status.WARN


def test_sessions_per_second_from_status() -> None:
    default = doctor.check_sessions_per_second(NODE, STATUS)
    assert default.status is Status.WARN
    assert "the default 30" in default.detail
    assert "switch.conf.xml" in default.fix and "sessions-per-second" in default.fix
    raised = doctor.check_sessions_per_second(NODE, STATUS.replace("max 30", "max 500"))
    assert raised.status is Status.OK and raised.detail == "500"
    lower = doctor.check_sessions_per_second(NODE, STATUS.replace("max 30", "max 10"))
    assert lower.status is Status.WARN and "below" in lower.detail
    garbage = doctor.check_sessions_per_second(NODE, "-ERR no reply\n")
    assert garbage.status is Status.WARN


def test_the_password_check_asks_for_the_dialplan_only_when_needed() -> None:
    asked: list[str] = []
    replies = {**GOOD, "global_getvar default_password": "1234"}

    def api(text: str) -> str:
        asked.append(text)
        return fake_api(replies)(text)

    assert by_name(doctor.node_checks(NODE, api))["default_password"].status is Status.WARN
    assert "xml_locate dialplan context name default" in asked
    assert "show modules" not in asked  # mod_flite answered already


# --- end to end over ESL ---------------------------------------------------------------


def scripted_replies(replies: dict[str, str]):
    def hook(connection: ScriptedConnection, command: ClientCommand) -> bool:
        if command.verb != "api":
            return False
        text = command.argument
        connection.send(
            encode_api_response(replies.get(text, f"-ERR {text.split()[0]} Command not found!\n"))
        )
        return True

    return hook


@pytest.fixture
def switch_with(request: pytest.FixtureRequest) -> Iterator[Callable[..., ScriptedSwitch]]:
    started: list[ScriptedSwitch] = []

    def start(replies: dict[str, str], **kwargs: object) -> ScriptedSwitch:
        switch = ScriptedSwitch(hook=scripted_replies(replies), **kwargs)  # type: ignore[arg-type]
        switch.__enter__()
        started.append(switch)
        return switch

    yield start
    for switch in started:
        switch.stop()


def run_doctor(invoke: Invoke, *nodes: str, json_output: bool = False):
    args = ["doctor", "--timeout", "3"] + (["--json"] if json_output else [])
    return invoke(*args, FSCONF_ESL=",".join(nodes))


def test_doctor_all_ok_exits_0(invoke: Invoke, switch_with) -> None:
    switch = switch_with(GOOD)
    result = run_doctor(invoke, f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.stdout.replace("0 FAIL", "")
    assert "OK    database" in result.stdout
    assert "connect: authenticated; FreeSWITCH Version 1.11.3-dev~64bit" in result.stdout
    assert "0 FAIL, 0 WARN, 11 OK" in result.stdout
    assert "ClueCon" not in result.output


def test_doctor_vanilla_switch_warns_and_fails_with_fixes(invoke: Invoke, switch_with) -> None:
    vanilla = {
        **GOOD,
        "module_exists mod_http_cache": "false",
        "xml_locate configuration configuration name conference.conf": VANILLA_ONLY,
        "global_getvar default_password": "1234",
        "xml_locate dialplan context name default": context(WARNING_EXTENSION),
        "status": STATUS,
    }
    switch = switch_with(vanilla)
    result = run_doctor(invoke, f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 1
    out = result.stdout
    assert "FAIL  127.0.0.1" in out and "mod_http_cache: not loaded" in out
    assert "fix: load it now with" in out
    assert "profile fsconf: missing" in out
    assert "default_password: is 1234" in out
    assert "sessions-per-second: the default 30" in out

    document = json.loads(
        run_doctor(invoke, f"127.0.0.1:{switch.port}:ClueCon", json_output=True).stdout
    )
    assert document["ok"] is False
    statuses = {c["name"]: c["status"] for c in document["checks"]}
    assert statuses["mod_http_cache"] == "FAIL"
    assert statuses["sessions-per-second"] == "WARN"
    assert statuses["default_password"] == "WARN"  # no fsconf extension seen: order unknown
    assert statuses["migrated"] == "OK"


def test_doctor_warnings_alone_exit_0(invoke: Invoke, switch_with) -> None:
    switch = switch_with({**GOOD, "status": STATUS})
    result = run_doctor(invoke, f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 0, result.output
    assert "WARN" in result.stdout and "0 FAIL, 1 WARN" in result.stdout


def test_doctor_wrong_password(invoke: Invoke, switch_with) -> None:
    switch = switch_with(GOOD, password="SomethingElse")
    result = run_doctor(invoke, f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 1
    assert "authentication failed" in result.stdout
    assert "FSCONF_ESL must equal" in result.stdout
    assert "ClueCon" not in result.output


def test_doctor_acl_rejection(invoke: Invoke, switch_with) -> None:
    switch = switch_with(GOOD, greeting="rude")
    result = run_doctor(invoke, f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 1
    assert "ACL" in result.stdout and "apply-inbound-acl" in result.stdout


def test_doctor_connection_refused(invoke: Invoke) -> None:
    port = closed_port()
    result = run_doctor(invoke, f"127.0.0.1:{port}:ClueCon")
    assert result.exit_code == 1
    assert f"cannot connect to 127.0.0.1:{port}" in result.stdout
    assert "event_socket.conf.xml" in result.stdout


def test_doctor_no_auth_request_times_out(invoke: Invoke, switch_with) -> None:
    switch = switch_with(GOOD, greeting=None)
    result = invoke("doctor", "--timeout", "0.2", FSCONF_ESL=f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 1
    assert "no ESL auth/request within 0.2s" in result.stdout


def test_doctor_checks_every_node(invoke: Invoke, switch_with) -> None:
    good = switch_with(GOOD)
    port = closed_port()
    result = run_doctor(invoke, f"127.0.0.1:{good.port}:ClueCon", f"127.0.0.1:{port}:ClueCon")
    assert result.exit_code == 1
    assert f"OK    127.0.0.1:{good.port}" in result.stdout
    assert f"FAIL  127.0.0.1:{port}" in result.stdout


def test_doctor_unmigrated_database_fails(env: dict[str, str], switch_with) -> None:
    switch = switch_with(GOOD)
    result = run_doctor(Invoke(env), f"127.0.0.1:{switch.port}:ClueCon")
    assert result.exit_code == 1
    assert "migrated:" in result.stdout and "fsconf db upgrade" in result.stdout


def test_diagnose_node_on_fakeswitch() -> None:
    """What the FakeSwitch implements today answers like the real switch."""
    from fsconf.testing import FakeSwitch

    fake = FakeSwitch(password="ClueCon", host="127.0.0.1", port=0)
    fake.start()
    try:
        host, port = fake.address
        checks = by_name(doctor.diagnose_node(EslNode(host, port, "ClueCon"), timeout=3))
    finally:
        fake.stop()
    assert checks["connect"].status is Status.OK
    for module in ("mod_conference", "mod_event_socket", "mod_http_cache", "tts"):
        assert checks[module].status is Status.OK, checks[module]
    assert checks["sessions-per-second"].status is Status.WARN
