"""Test-wide setup.

fsconf runs under gevent with the standard library monkey-patched (as
`fsconf serve` does), so the tests do the same before anything else imports
socket or threading: the FakeSwitch, the HTTP receivers and the code under
test then share one hub, and a blocking call anywhere shows up as a hang in
the tests instead of in production.
"""

from gevent import monkey

monkey.patch_all()

from collections.abc import Iterator  # noqa: E402  (after the patch, as everything)

import pytest  # noqa: E402
import requests  # noqa: E402

# Database fixtures (db_url on a real SQLite file and on PostgreSQL, migrated
# session factories) for every test directory; the FakeSwitch and customer
# application that `fsconf serve` subprocess tests run against (a module that
# defines its own `switch` or `customer` fixture keeps it).
pytest_plugins = ["tests.dbfixtures", "tests.serve_process"]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """The ``requests.Session`` a delivery worker sends with, closed after."""
    session = requests.Session()
    yield session
    session.close()
