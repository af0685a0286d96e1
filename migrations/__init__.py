"""fsconf's Alembic scripts (installed as the package ``fsconf._migrations``).

Run them through :mod:`fsconf.store.migrate` (``fsconf db upgrade``); there is
no ``alembic.ini``.
"""
