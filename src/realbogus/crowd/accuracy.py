"""Scoring aggregated labels against held-out reference labels (accuracy, balanced accuracy, coverage)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["label_accuracy", "reference_split"]


def reference_split(subject_ids: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """Seeded boolean mask choosing `fraction` of the subjects (rounded) as the reference set."""
    if not 0 < fraction < 1:
        msg = f"fraction must be in (0, 1); got {fraction}"
        raise InputError(msg)
    n = len(subject_ids)
    rng = np.random.default_rng([seed, 0])
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(fraction * n))]] = True
    return mask


def label_accuracy(subjects: pd.DataFrame, truth: pd.Series) -> pd.DataFrame:
    """Accuracy, balanced accuracy and coverage of each label set against `truth`.

    Parameters
    ----------
    subjects : DataFrame
        `CrowdLabels.subjects` (subject_id, label, unstable, stable).
    truth : Series subject_id -> 1/0
        The labels to score against (held-out subjects only: never the reference set).

    Returns
    -------
    DataFrame indexed by set ("all" = label where Pr != 0.5, "unstable", "stable")
        `n`, `coverage` (labelled / len(truth)), `accuracy`, `balanced_accuracy` (mean of the
        Real and Bogus recalls among labelled subjects; NaN when a class is absent).
    """
    s = subjects.set_index("subject_id").reindex(truth.index)
    y = truth.to_numpy().astype(int)
    lab = s["label"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    rows = {}
    for name, mask in (
        ("all", ~np.isnan(lab)),
        ("unstable", s["unstable"].fillna(False).to_numpy(bool)),
        ("stable", s["stable"].fillna(False).to_numpy(bool)),
    ):
        mask = mask & ~np.isnan(lab)
        pred, yy = lab[mask].astype(int), y[mask]
        recalls = [np.mean(pred[yy == c] == c) if (yy == c).any() else np.nan for c in (1, 0)]
        rows[name] = {
            "n": int(mask.sum()),
            "coverage": float(mask.mean()) if len(mask) else np.nan,
            "accuracy": float(np.mean(pred == yy)) if mask.any() else np.nan,
            "balanced_accuracy": float(np.mean(recalls)) if not np.isnan(recalls).any() else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")
