"""The fsconf command line: help, version and exit codes (0 ok, 2 usage)."""

import subprocess
import sys

from click.testing import CliRunner

from fsconf import __version__
from fsconf.cli import cli


def test_help_lists_the_program():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "FreeSWITCH" in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_is_a_usage_error_exit_2():
    completed = subprocess.run(
        [sys.executable, "-c", "from fsconf.cli import main; main()", "no-such-command"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "No such command" in completed.stderr
