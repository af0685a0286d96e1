"""One real stack per database backend, shared by the hostile-input tests.

Starting and stopping the whole pipeline (FakeSwitch, ``fsconf serve``'s
Fsconf, the customer application) costs seconds, and the hostile corpora run
dozens of calls, so the stack lives for the whole package, once on a SQLite
file and once on a PostgreSQL schema (same rules as ``tests/dbfixtures.py``:
skipped without ``FSCONF_TEST_POSTGRES_URL``, a failure under ``CI``).  Each
test uses its own TwiML paths and reads only its own calls' commands, alerts
and rows, so the tests stay independent of their order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsconf.demo import Stack, running_stack
from tests.dbfixtures import BACKENDS, private_postgres_schema


@pytest.fixture(scope="package", params=BACKENDS)
def stack_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        directory: Path = tmp_path_factory.mktemp("hostile")
        yield f"sqlite:///{directory}/stack.db"
        return
    with private_postgres_schema("fsconf_hostile") as url:
        yield url


@pytest.fixture(scope="package")
def stack(stack_db_url: str) -> Iterator[Stack]:
    with running_stack(stack_db_url) as running:
        yield running
