"""Load and faults of `realbogus label serve` (loopback; benchmarks/label_load.py does the work).

Labellers post in parallel: the export must hold exactly the acknowledged classifications, none
lost or duplicated; the server is then killed with SIGKILL mid-load and restarted: no
acknowledged classification may be lost. The issue's full scale (50 labellers, 4,000
classifications, 10,000 subjects) is the slow test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "label_load.py"


def _bench():
    spec = importlib.util.spec_from_file_location("label_load", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(result: dict, n: int) -> None:
    load, kill = result["load"], result["kill"]
    assert load["errors"] == []
    assert load["acknowledged"] == load["exported_rows"] == n
    assert load["duplicated_rows"] == load["duplicated_pairs"] == load["missing_acknowledged"] == 0
    assert result["paced"]["errors"] == []
    assert kill["acknowledged_during_load"] > 0
    assert kill["lost_acknowledged"] == 0 and kill["acknowledged_rows_match"]
    assert kill["duplicated_rows"] == 0
    assert kill["rows_after_restart"] >= kill["rows_before"] + kill["acknowledged_during_load"]


# A request cut by the SIGKILL can leave its client socket to the garbage collector.
_CUT_SOCKETS = "ignore::pytest.PytestUnraisableExceptionWarning"


@pytest.mark.slow
@pytest.mark.filterwarnings(_CUT_SOCKETS)
def test_load_and_sigkill_small(tmp_path):
    """10 labellers x 300 classifications over 1,000 subjects; SIGKILL after 1.5 s of load."""
    args = ["--subjects", "1000", "--labellers", "10", "--classifications", "300"]
    args += ["--paced-clients", "10", "--paced-requests", "100", "--think", "0.2"]
    args += ["--kill-after", "1.5", "--out", str(tmp_path / "r.json")]
    _check(_bench().main(args), 300)


@pytest.mark.slow
@pytest.mark.filterwarnings(_CUT_SOCKETS)
def test_load_and_sigkill_issue_scale(tmp_path):
    """The issue's scale: 50 labellers post 4,000 classifications over 10,000 subjects."""
    _check(_bench().main(["--out", str(tmp_path / "r.json")]), 4000)
