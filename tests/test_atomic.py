"""Outputs honour the umask (issue 19, Why #7: files 0600 and folders 0700 whatever the umask)."""

import os
import stat

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.io.tables import write_table

runner = CliRunner()


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield 0o002
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_and_package_folders_follow_the_umask(tmp_path, umask_002):
    """A score table, a model package (folder and files) and a Rubin export get 0664 / 0775."""
    write_table(pd.DataFrame({"a": np.arange(3)}), tmp_path / "t.parquet")
    assert _mode(tmp_path / "t.parquet") == 0o664
    assert runner.invoke(app, ["package", "init", str(tmp_path / "pkg")]).exit_code == 0
    assert _mode(tmp_path / "pkg") == 0o775
    assert {_mode(p) for p in (tmp_path / "pkg").iterdir()} == {0o664}
    result = runner.invoke(
        app, ["package", "export-rubin", str(tmp_path / "pkg"), str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "r") == 0o775
    assert {_mode(p) for p in (tmp_path / "r").iterdir()} == {0o664}
