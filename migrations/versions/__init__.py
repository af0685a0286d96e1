"""Alembic revisions, one module each, named ``NNNN_<slug>.py``."""
