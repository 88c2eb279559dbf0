"""realbogus: reliability scores for difference-imaging (DIA) detections, after DMTN-337.

The public API is importable from here; each name is loaded on first use, so
``import realbogus`` (and ``realbogus.alerts``, ``realbogus.sim``) stays free of torch::

    from realbogus import Scorer, cut_stamps, load_package
    scorer = Scorer(load_package("rubin-v0.1"))
    table = scorer.score_stamps(cut_stamps(diff, sci, tmpl, x, y, size=51), ids)
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("realbogus")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

#: Public name -> the module that defines it.
_API = {
    "Stamps": "realbogus.stamps",
    "cut_stamps": "realbogus.stamps",
    "Dataset": "realbogus.io.dataset",
    "open_dataset": "realbogus.io.dataset",
    "write_dataset": "realbogus.io.dataset",
    "read_table": "realbogus.io.tables",
    "write_table": "realbogus.io.tables",
    "read_image": "realbogus.io.images",
    "read_catalog": "realbogus.io.images",
    "ModelCard": "realbogus.model.card",
    "ModelPackage": "realbogus.model.package",
    "load_package": "realbogus.model.package",
    "save_package": "realbogus.model.package",
    "builtin_models": "realbogus.model.package",
    "export_rubin": "realbogus.model.rubin",
    "import_rubin": "realbogus.model.rubin",
    "Scorer": "realbogus.inference.scorer",
    "TrainConfig": "realbogus.training.train",
    "train": "realbogus.training.train",
    "evaluate": "realbogus.evaluation.evaluate",
    "evaluate_packages": "realbogus.workflows.evaluate",
    "score_dataset": "realbogus.workflows.score",
    "score_images": "realbogus.workflows.score",
    "score_alert_files": "realbogus.workflows.score",
    "read_alerts": "realbogus.alerts",
    "score_alerts": "realbogus.alerts",
    "simulate_survey": "realbogus.sim",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> object:
    if name not in _API:
        msg = f"module 'realbogus' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(_API[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
