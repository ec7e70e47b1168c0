"""`python -m distillery.cli` and `from distillery.cli import main`, as before the CLI moved to
distillery/app/cli.py. A package rather than a cli.py module, so that git follows the old
cli.py's history (and merges of changes to it) to its new place."""

from distillery.app.cli import build_parser, main

__all__ = ["build_parser", "main"]
