"""The `realbogus` command line (Typer): parses arguments, calls the library, shows progress."""

from .app import app

__all__ = ["app"]
