"""`python -m realbogus.cli`: the same command line as `realbogus`."""

from .app import app

app(prog_name="realbogus")
