"""``fsconf``: the command line that ops runbooks script.

Exit codes: 0 ok, 1 failure, 2 usage (click's own code for bad usage).
Every command reads the same ``FSCONF_*`` environment as ``fsconf serve``.
"""

from __future__ import annotations

import sys

import click

from fsconf import __version__
from fsconf.config import Settings, load_settings
from fsconf.errors import FsconfError


class Context:
    """What every command gets: the settings, loaded once, lazily."""

    def __init__(self, config_file: str | None) -> None:
        self._config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_file=self._config_file)
        return self._settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fsconf")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="FSCONF_CONFIG",
    help="INI file with a [fsconf] section (the environment wins over it).",
)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """Run Twilio <Dial><Conference> applications on your own FreeSWITCH."""
    ctx.obj = Context(config_file)


def main() -> None:
    try:
        result = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except FsconfError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
