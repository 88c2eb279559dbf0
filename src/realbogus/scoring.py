"""The Scorer: batched inference of a model package and the score table.

Score table (docs/design.md): `diaSourceId`, `reliability` (float32), `reliabilityVersion`,
`valid_fraction`, `edge`, `passes_cutoff` (reliability >= the card's cutoff). Every input row
gets a row, in input order; nothing is dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .dataset import Dataset
from .errors import ConfigError, StampShapeError
from .package import ModelPackage
from .stamps import Stamps, check_stamps

__all__ = ["SCORE_COLUMNS", "Scorer", "resolve_device", "score_table"]

SCORE_COLUMNS = ("diaSourceId", "reliability", "reliabilityVersion", "valid_fraction", "edge", "passes_cutoff")
Progress = Callable[[int, int], None]


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' (a GPU when present, else CPU), 'cpu' or 'cuda[:i]'; a missing GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        msg = f"device {device!r} requested but no CUDA GPU is available"
        raise ConfigError(msg)
    if device != "cpu" and not device.startswith("cuda"):
        msg = f"device must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}"
        raise ConfigError(msg)
    return torch.device(device)


def score_table(
    ids: np.ndarray,
    reliability: np.ndarray,
    *,
    version: str,
    cutoff: float,
    valid_fraction: np.ndarray,
    edge: np.ndarray,
) -> pd.DataFrame:
    """Assemble the score table; all arrays have shape (N,)."""
    reliability = np.asarray(reliability, dtype=np.float32)
    return pd.DataFrame(
        {
            "diaSourceId": np.asarray(ids),
            "reliability": reliability,
            "reliabilityVersion": pd.Series([version] * len(reliability), dtype="string"),
            "valid_fraction": np.asarray(valid_fraction, dtype=np.float32),
            "edge": np.asarray(edge, dtype=bool),
            "passes_cutoff": reliability >= cutoff,
        }
    )


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view; read-only arrays (Arrow buffers) are fine since inference only reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class Scorer:
    """Scores stamps with a model package.

    Parameters
    ----------
    package : ModelPackage
        The model and its card (stamp size, preprocessing, cutoff, version).
    batch_size : int
        Stamps per forward pass. 1024 is ~2x faster on CPU than Rubin's fixed 64.
    device : str
        'auto', 'cpu' or 'cuda[:i]'.
    """

    def __init__(self, package: ModelPackage, *, batch_size: int = 1024, device: str = "auto") -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive integer; got {batch_size!r}"
            raise ConfigError(msg)
        self.package = package
        self.card = package.card
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self._model = package.model.to(self.device).eval()

    @property
    def version(self) -> str:
        """Model version written into `reliabilityVersion`."""
        return self.card.version

    def predict(self, data: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """Reliabilities of stamps.

        Parameters
        ----------
        data : ndarray of shape (N, 3, S, S), float32
            Stamps in [difference, science, template] order, finite, S = the card's stamp size.

        Returns
        -------
        ndarray of shape (N,), float32, in [0, 1]
        """
        check_stamps(data, size=self.card.stamp_size)
        n = len(data)
        out = np.empty(n, dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                batch = _as_tensor(data[start : start + self.batch_size]).to(self.device)
                out[start : start + len(batch)] = self._model(batch).float().cpu().numpy()
                if progress is not None:
                    progress(start + len(batch), n)
        return out

    def score_stamps(self, stamps: Stamps, ids: np.ndarray, *, progress: Progress | None = None) -> pd.DataFrame:
        """The score table for `stamps`, one row per stamp in order, `ids` of shape (N,)."""
        ids = np.asarray(ids)
        if ids.shape != (len(stamps),):
            msg = f"ids must have shape ({len(stamps)},) to match the stamps; got {ids.shape}"
            raise StampShapeError(msg)
        reliability = self.predict(stamps.data, progress=progress)
        return score_table(
            ids,
            reliability,
            version=self.version,
            cutoff=self.card.cutoff,
            valid_fraction=stamps.valid_fraction,
            edge=stamps.edge,
        )

    def score_dataset(self, dataset: Dataset, *, progress: Progress | None = None) -> pd.DataFrame:
        """Score every row of a dataset, part by part (bounded memory), in dataset order."""
        if dataset.stamp_size != self.card.stamp_size:
            msg = (
                f"{dataset.path}: stamps are {dataset.stamp_size} px but model "
                f"{self.version} takes {self.card.stamp_size} px"
            )
            raise StampShapeError(msg)
        tables, done, total = [], 0, len(dataset)
        for table, stamps in dataset.iter_parts():
            ids = table["diaSourceId"].to_numpy() if "diaSourceId" in table else np.arange(done, done + len(table))
            tables.append(self.score_stamps(stamps, ids))
            done += len(table)
            if progress is not None:
                progress(done, total)
        if not tables:
            return score_table(
                np.empty(0, np.int64), np.empty(0, np.float32), version=self.version,
                cutoff=self.card.cutoff, valid_fraction=np.empty(0), edge=np.empty(0, bool),
            )
        return pd.concat(tables, ignore_index=True)
