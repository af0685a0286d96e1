"""The ``fsconf`` console script.

gevent must patch the standard library before anything imports ``socket``,
``ssl`` or ``threading`` (requests, SQLAlchemy's drivers, our ESL code), so
the entry point does that first and only then imports the CLI.
"""

from gevent import monkey

monkey.patch_all()


def main() -> None:
    from fsconf.cli import main as cli_main

    cli_main()
