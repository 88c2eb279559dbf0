"""A child package whose scores are corrected for observing conditions, fitted on a simulation."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..inference.scorer import Scorer
from ..io.dataset import open_dataset
from ..model.card import ModelCard
from ..model.package import load_package, save_package
from ..training.conditions import fit_correction

__all__ = ["condition_package"]


def condition_package(
    model: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    version: str,
    knee: float = 0.1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a new package: `model`'s network and cutoff with a correction fitted on dataset `data`.

    `data` is a labelled simulation with cloudy visits (label 1 Real, 0 Bogus; other rows are
    skipped). The new card's `parent` is `model`'s version. A model that already has a correction
    is refused: fit on its parent, whose scores the correction is for.
    """
    package = load_package(model)
    if package.card.conditions is not None:
        msg = f"{package.version} already has a condition correction; fit one on its parent {package.card.parent}"
        raise ConfigError(msg)
    dataset = open_dataset(data)
    if dataset.stamp_size != package.card.stamp_size:
        msg = f"{data}: stamps are {dataset.stamp_size} px but {package.version} takes {package.card.stamp_size} px"
        raise ConfigError(msg)
    scorer = Scorer(package)
    total, done = len(dataset), 0

    def labelled_parts() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        nonlocal done
        for table, stamps in dataset.iter_parts():
            if "label" not in table:
                msg = f"{data} has no label column: a correction is fitted on labelled (simulated) detections"
                raise ConfigError(msg)
            labels = table["label"].to_numpy(dtype=float, na_value=np.nan)
            keep = np.isin(labels, (0.0, 1.0))
            yield labels[keep], stamps.data[keep]
            done += len(table)
            if progress is not None:
                progress(done, total)

    correction = fit_correction(labelled_parts(), scorer.predict, knee=knee)
    fitted_on = {
        "dataset": str(data),
        "content_hash": dataset.manifest.get("content_hash"),
        **correction.fitted_on,
    }
    card = ModelCard(
        **{
            **package.card.model_dump(exclude={"created"}),
            "version": version,
            "parent": package.version,
            "conditions": {**correction.model_dump(), "fitted_on": fitted_on},
            # The network's own metrics stay on the parent's card; this card gets its own evaluations.
            "metrics": {
                "cutoff_choice": f"{package.version}'s: scores at noise ratio >= {knee:g} are its scores"
            },
            "description": (
                f"{package.version}'s network and cutoff, its scores corrected for observing conditions "
                f"(noise ratio below {knee:g}) as fitted on {Path(data).name}. {package.card.description}"
            ).strip(),
        }
    )
    return save_package(out, package.model, card, overwrite=overwrite)
