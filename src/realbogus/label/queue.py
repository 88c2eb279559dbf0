"""Active learning: the value of a human label for each subject, which orders the queue.

Strategies (`STRATEGIES`; `--strategy`):

* ``bald``: BALD, the mutual information between the label
  and the network weights, from MC dropout (`mc_dropout`: T stochastic passes with the DMTN CNN's
  dropout layers on): H[mean p] - mean H[p_t], in bits.
* ``entropy``: the predictive entropy H[mean p] of the same MC-dropout passes, bits.
* ``likely-real`` (the default when a model is given): the mean reliability of the same passes,
  the subjects the model thinks Real first (with few Real subjects in DATA, this balances the
  classes of the labels; measured in docs/labelling.md: the only order that beat random).
* ``ensemble``: the data's own ``reliabilityErr`` column (an ensemble's spread).
* ``swap`` (the default without a model): SWAP's uncertainty 1 - |2 Pr(Real) - 1|, updated live
  from the database (`live.LiveSwap`).
* ``random``: a seeded random order (the baseline of the active-learning measurement).

Higher priority is served first; the store draws among the top few so that concurrent people
spread out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, InputError
from ..model.package import ModelPackage
from ..model.transforms import preprocess_array

__all__ = [
    "STRATEGIES",
    "MC_STRATEGIES",
    "McDropout",
    "binary_entropy",
    "default_strategy",
    "mc_dropout",
    "mc_dropout_model",
    "static_priority",
    "swap_priority",
]

STRATEGIES = ("bald", "entropy", "likely-real", "ensemble", "swap", "random")

#: The strategies that need MC dropout of a model package (`mc_dropout`).
MC_STRATEGIES = ("bald", "entropy", "likely-real")


def default_strategy(has_model: bool) -> str:
    """``likely-real`` with a model package, else ``swap`` (docs/labelling.md, "Active learning")."""
    return "likely-real" if has_model else "swap"


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) = -p log2 p - (1-p) log2 (1-p), bits; 0 at p = 0 or 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


@dataclass(frozen=True)
class McDropout:
    """MC-dropout summary of each stamp.

    Attributes
    ----------
    mean : ndarray of shape (N,), float64
        Mean reliability over the passes.
    entropy : ndarray of shape (N,), float64
        Predictive entropy H[mean], bits.
    bald : ndarray of shape (N,), float64
        Mutual information H[mean] - mean_t H[p_t], bits (>= 0).
    """

    mean: np.ndarray
    entropy: np.ndarray
    bald: np.ndarray


def mc_dropout(
    package: ModelPackage,
    stamps: np.ndarray,
    *,
    n_samples: int = 20,
    batch_size: int = 512,
    seed: int = 0,
) -> McDropout:
    """Reliability mean, entropy and BALD from `n_samples` passes with dropout active.

    Parameters
    ----------
    package : ModelPackage
        A package whose torch model has ``nn.Dropout`` layers (the DMTN-337 CNN has three).
    stamps : ndarray of shape (N, 3, S, S), float32
        Stamps in pixel units, S = the card's stamp size; the card's preprocessing is applied.
    n_samples : int
        Stochastic passes T (>= 2).
    seed : int
        Seed of the dropout masks (torch's global generator is restored afterwards).
    """
    size = package.card.stamp_size
    if stamps.ndim != 4 or stamps.shape[1:] != (3, size, size):
        msg = f"the model wants stamps of shape (N, 3, {size}, {size}); DATA has {stamps.shape}: pick a --model of that stamp size"
        raise InputError(msg)
    return mc_dropout_model(
        package.model,
        stamps,
        prepare=lambda x: preprocess_array(package.card, x),
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
    )


def mc_dropout_model(
    model: torch.nn.Module,
    stamps: np.ndarray,
    *,
    prepare: Callable[[np.ndarray], np.ndarray],
    n_samples: int = 20,
    batch_size: int = 512,
    seed: int = 0,
) -> McDropout:
    """`mc_dropout` for a bare torch model (N, C, S, S) -> reliabilities (N,) and its input
    preparation `prepare` (float32 batch in pixel units -> what the model is fed). The model is
    copied; the original keeps its mode."""
    if n_samples < 2:
        msg = f"--mc-samples must be >= 2; got {n_samples}"
        raise ConfigError(msg)
    model = copy.deepcopy(model).eval()
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    if not dropouts:
        msg = "the model has no dropout layers; use --strategy ensemble, swap or random"
        raise ConfigError(msg)
    for m in dropouts:
        m.train()
    n = len(stamps)
    draws = np.empty((n_samples, n), dtype=np.float64)
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        for start in range(0, n, batch_size):
            batch = np.nan_to_num(np.asarray(stamps[start : start + batch_size], np.float32))
            x = torch.from_numpy(np.ascontiguousarray(prepare(batch), dtype=np.float32))
            for t in range(n_samples):
                draws[t, start : start + len(batch)] = model(x).double().numpy()
    mean = draws.mean(axis=0)
    entropy = binary_entropy(mean)
    bald = np.maximum(entropy - binary_entropy(draws).mean(axis=0), 0.0)
    return McDropout(mean=mean, entropy=entropy, bald=bald)


def swap_priority(p_real: np.ndarray) -> np.ndarray:
    """SWAP's uncertainty 1 - |2 p - 1| of Pr(Real): 1 at 0.5, 0 at 0 or 1."""
    return 1.0 - np.abs(2.0 * np.asarray(p_real, dtype=np.float64) - 1.0)


def static_priority(
    strategy: str,
    table: pd.DataFrame,
    *,
    mc: McDropout | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Queue priority of each detection for a strategy fixed at ingestion.

    Parameters
    ----------
    strategy : str
        One of `STRATEGIES`. ``swap`` starts every subject at 1 (Pr(Real) = 0.5).
    table : DataFrame of N rows
        The detection table (``reliabilityErr`` for ``ensemble``).
    mc : McDropout, optional
        Needed for the `MC_STRATEGIES`.
    seed : int
        Seed of the ``random`` order.

    Returns
    -------
    ndarray of shape (N,), float64
    """
    if strategy not in STRATEGIES:
        msg = f"--strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
        raise ConfigError(msg)
    n = len(table)
    if strategy in MC_STRATEGIES:
        if mc is None:
            msg = f"--strategy {strategy} needs MC dropout: pass --model PACKAGE"
            raise ConfigError(msg)
        by = {"bald": mc.bald, "entropy": mc.entropy, "likely-real": mc.mean}
        return np.asarray(by[strategy], dtype=np.float64)
    if strategy == "ensemble":
        if "reliabilityErr" not in table.columns:
            msg = "--strategy ensemble needs a reliabilityErr column in DATA (an ensemble's scores)"
            raise ConfigError(msg)
        return np.nan_to_num(table["reliabilityErr"].to_numpy(dtype=np.float64), nan=0.0)
    if strategy == "random":
        return np.random.default_rng([seed, 1]).random(n)
    return np.ones(n)
