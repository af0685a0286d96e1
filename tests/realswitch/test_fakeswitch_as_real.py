"""The real-switch suite runs: against a FakeSwitch served as if it were a real switch.

Nobody here has a FreeSWITCH, so this proves the opt-in suite itself works
(fixtures, preflight, the adapter's originate/B-leg discovery, every
scenario) by running it in a subprocess with ``FSCONF_TEST_ESL`` pointing at a
FakeSwitch on a port. The FakeSwitch answers the test extensions by pattern
(``fsconf_sock_<port>``, ``storm_<on>_<off>_<hz>``) and turns a talking
caller's tone into talk events, which it cannot hear
(:func:`fsconf.testing.realswitch.serve_fake_as_real`). The real-switch tests
themselves use no FakeSwitch-only API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fsconf.testing.realswitch import ENV_ESL, ENV_OUTBOUND_PORT, Target, serve_fake_as_real

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

pytestmark = pytest.mark.slow


def outcomes(report: Path) -> dict[str, str]:
    tree = ET.parse(report)
    results = {}
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        results[name] = kinds[0] if kinds else "passed"
    return results


def test_the_real_switch_suite_passes_against_a_fakeswitch_served_as_a_real_switch(
    tmp_path: Path,
) -> None:
    if Target.from_environ() is not None:
        pytest.skip(f"{ENV_ESL} is set: the suite runs against that switch instead")
    switch = serve_fake_as_real()
    host, port = switch.address
    env = dict(os.environ)
    env[ENV_ESL] = f"{host}:{port}:{switch.password}"
    env.pop(ENV_OUTBOUND_PORT, None)
    env.setdefault("FSCONF_TEST_TIMEOUT", "10")
    report = tmp_path / "realswitch.xml"
    try:
        # gevent's subprocess (tests/conftest patches it): the FakeSwitch keeps serving.
        run = subprocess.run(
            [
                sys.executable, "-m", "pytest", str(HERE), "-m", "realswitch",
                "-p", "no:cacheprovider", "-q", "-rA", f"--junitxml={report}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        switch.stop()
    results = outcomes(report) if report.exists() else {}
    failed = {name: kind for name, kind in results.items() if kind != "passed"}
    assert results and not failed, f"{failed}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    assert len(results) >= 10
