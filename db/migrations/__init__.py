"""Alembic's environment and script template for pgbell's migrations."""
