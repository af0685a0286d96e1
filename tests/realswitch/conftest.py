"""The opt-in suite against a real FreeSWITCH.

``FSCONF_TEST_ESL=host:port:password pytest tests/realswitch`` runs the
end-to-end scenarios on that switch; without it every test here is skipped
(the one place a skip is right: nobody has a FreeSWITCH in CI). Companions:

* ``FSCONF_TEST_OUTBOUND_HOST`` (default ``127.0.0.1``): where fsconf's
  outbound server listens, an address of this machine the switch can reach;
* ``FSCONF_TEST_OUTBOUND_PORT`` (default: any free port): fix it to open a firewall;
* ``FSCONF_TEST_RECORDINGS_DIR`` (default ``/tmp``): a directory *on the switch*
  FreeSWITCH may write the conference recordings to;
* ``FSCONF_TEST_TIMEOUT`` (default 20 s): how long any one wait may take.

Before the first scenario, the switch is checked once: the modules, the
``fsconf`` profile and caller-controls groups, and the test extensions of
``freeswitch/test/`` (``fsconf_sock_<port>`` must connect back to us, a
``storm_*`` talker must answer). A missing piece fails every test with what to
install, instead of a timeout deep inside a scenario.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsconf.testing.realswitch import (
    ENV_ESL,
    RealStack,
    RealSwitch,
    SwitchNotReady,
    Target,
    preflight,
    running_real_stack,
)

HERE = Path(__file__).parent
SKIP_REASON = (
    f"opt-in: set {ENV_ESL}=host:port:password to run the scenarios on a real FreeSWITCH "
    "(freeswitch/README.md, 'Running the real-switch suite')"
)
NOT_REAL = {"test_fakeswitch_as_real.py"}
"""Modules here that are not real-switch scenarios (they run without a switch)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    target = Target.from_environ()
    for item in items:
        path = Path(item.path)
        if path.parent != HERE or path.name in NOT_REAL:
            continue
        item.add_marker(pytest.mark.realswitch)
        if target is None:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def target() -> Target:
    found = Target.from_environ()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


@pytest.fixture(scope="session")
def switch_ready(target: Target) -> list[str]:
    """Checked once per session: fails every scenario with what the switch lacks."""
    switch = RealSwitch.for_target(target)
    try:
        switch.start()
        problems, notes = preflight(switch, target)
    except SwitchNotReady as error:
        pytest.fail(str(error), pytrace=False)
    finally:
        switch.stop()
    if problems:
        pytest.fail(
            "the switch under test is not ready:\n  - " + "\n  - ".join(problems),
            pytrace=False,
        )
    return notes


@pytest.fixture
def real_stack(target: Target, switch_ready: list[str]) -> Iterator[RealStack]:
    """``running_stack`` on the real switch: fsconf + the customer application."""
    with running_real_stack(target) as stack:
        yield stack
