"""Training and fine-tuning of the DMTN-337 CNN: seeded, resumable, early-stopped.

Defaults are the note's: BCE loss, Adam with lr 1e-4 and weight decay 3.6e-2, batch 128,
class balance by subsampling, vertical and horizontal flips. Splits group by field so no field
is on two sides. The run state is checkpointed after every epoch next to the output package
(`<out>.train/state.pt`); re-running the same command resumes from it and ends with the same
weights as an uninterrupted run, because every epoch's data order, flips and dropout draw from
generators seeded by (seed, epoch) alone.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError, InputError, RealBogusWarning
from ..evaluation import metrics
from ..io.atomic import atomic_path
from ..io.dataset import Dataset, balance_by_subsampling, open_dataset, split_by_group
from ..model.architectures import get_architecture
from ..model.card import ModelCard, survey_family
from ..model.network import Network, build_model
from ..model.package import ModelPackage, load_package, save_package
from ..model.transforms import PREPROCESSING, preprocess_pixels
from ..numeric import mad_sigma

__all__ = [
    "TrainConfig",
    "EpochReport",
    "StampTorchDataset",
    "MIN_CUTOFF_AUC",
    "MIN_CUTOFF_ROWS",
    "choose_cutoff",
    "epoch_lr",
    "mask_blocks",
    "robust_channel_scale",
    "stamp_memmap",
    "train",
]

STATE = "state.pt"

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (DMTN-337 defaults). Stored in the card's `hyperparameters`.

    `preprocessing`: the card's pixel preprocessing. None means "asinh-noise" for a new model
    and the parent's when fine-tuning. "asinh-noise" feeds asinh(x / (s_c sigma)), sigma each
    stamp's own difference noise and s_c each channel's noise relative to the difference's on the
    training stamps: the model sees stamps in units of their noise, whatever the depth or pixel
    unit (docs/training.md: it narrowed the gap to real Rubin and ZTF alerts). "asinh" feeds
    asinh(x / s_c) with s_c fixed in pixel units; both compress the 10^4 dynamic range of raw nJy
    stamps that otherwise dominates the gradients (one epoch: validation AUC 0.98 against 0.87 raw).
    "none" keeps raw pixels as Rubin's interface feeds them; then `input_scale` trains on
    x / s_c and folds s_c into the first convolution, so the package still takes raw pixels.

    `lr_schedule`: "constant" (the note's), or "cosine" from `lr` to lr / 100 over `epochs`
    (`epoch_lr`). `mask_augment`: the probability that a training stamp gets masked blocks
    (`mask_blocks`), as survey cutouts have where pixels are flagged (17 % of the real ZTF alerts).
    `rotations`: also transpose half the training stamps, so with `flips` every one of the 8
    orientations of a stamp (quarter turns and mirror images) is trained on equally.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 3.6e-2
    patience: int = 5
    seed: int = 0
    flips: bool = True
    balance: bool = True
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    threshold: float = 0.5
    preprocessing: str | None = None
    input_scale: bool = True
    lr_schedule: str = "constant"
    mask_augment: float = 0.0
    rotations: bool = False
    architecture: str | None = None

    def __post_init__(self) -> None:
        if self.architecture is not None:
            get_architecture(self.architecture)  # unknown ids list the registered ones
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                msg = f"--{name.replace('_', '-')} (TrainConfig.{name}) must be a positive integer; got {value!r}"
                raise ConfigError(msg)
        if not self.lr > 0 or not self.weight_decay >= 0:
            msg = f"--lr must be > 0 and --weight-decay >= 0 (TrainConfig.lr, .weight_decay); got {self.lr}, {self.weight_decay}"
            raise ConfigError(msg)
        if not 0 < self.threshold < 1:
            msg = f"TrainConfig.threshold (Python only) must be in (0, 1); got {self.threshold}"
            raise ConfigError(msg)
        if not 0 <= self.mask_augment <= 1:
            msg = f"--mask-augment (TrainConfig.mask_augment) must be a probability in [0, 1]; got {self.mask_augment!r}"
            raise ConfigError(msg)
        if self.lr_schedule not in LR_SCHEDULES:
            msg = f"--lr-schedule (TrainConfig.lr_schedule) must be one of {list(LR_SCHEDULES)}; got {self.lr_schedule!r}"
            raise ConfigError(msg)
        if self.preprocessing not in (None, *PREPROCESSING):
            msg = f"--preprocessing (TrainConfig.preprocessing) must be one of {list(PREPROCESSING)} or None; got {self.preprocessing!r}"
            raise ConfigError(msg)


def epoch_lr(config: TrainConfig, epoch: int) -> float:
    """Learning rate of `epoch` (0-based): constant, or cosine from `lr` down to lr / 100 at the last epoch.

    A function of the epoch alone, so a resumed run takes the same steps as an uninterrupted one.
    """
    if config.lr_schedule == "constant" or config.epochs == 1:
        return config.lr
    t = epoch / (config.epochs - 1)
    return config.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did: mean training loss, validation loss, purity and completeness."""

    epoch: int
    train_loss: float
    val_loss: float
    val_purity: float
    val_completeness: float
    best: bool


def stamp_memmap(dataset: Dataset) -> np.ndarray:
    """All stamps of a dataset as a read-only (N, 3, S, S) float32 memory map.

    Built once, part by part, into `.stamps-<hash>.npy` in the dataset directory (or the
    temp directory when that is read-only), so training reads stamps from the page cache
    instead of holding every stamp in process memory.
    """
    key = dataset.manifest["content_hash"].split(":")[-1][:16]
    shape = (len(dataset), 3, dataset.stamp_size, dataset.stamp_size)
    for folder in (dataset.path, Path(tempfile.gettempdir())):
        cache = folder / f".stamps-{key}.npy"
        if cache.is_file():
            array = np.load(cache, mmap_mode="r")
            if array.shape == shape and array.dtype == np.float32:
                return array
        if os.access(folder, os.W_OK):
            break
    with atomic_path(cache) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        start = 0
        for _, stamps in dataset.iter_parts():
            array[start : start + len(stamps)] = stamps.data
            start += len(stamps)
        array.flush()
        del array
    return np.load(cache, mmap_mode="r")


class StampTorchDataset(torch.utils.data.Dataset):
    """A torch Dataset over rows of a stamp memory map: (stamp tensor (3, S, S), label float).

    Parameters
    ----------
    stamps : ndarray of shape (N, 3, S, S), float32 (a memory map is fine: nothing is copied
        until an item is read)
    labels : ndarray of shape (N,)
    indices : ndarray of int, the rows this dataset exposes
    flip_seed : int or None
        When given, item i of epoch e is flipped vertically / horizontally with probability 1/2
        each, drawn from ``default_rng([flip_seed, e, i])``; call `set_epoch` each epoch.
    """

    def __init__(
        self,
        stamps: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray,
        *,
        flip_seed: int | None = None,
    ) -> None:
        self.stamps, self.labels, self.indices = (
            stamps,
            np.asarray(labels, np.float32),
            np.asarray(indices),
        )
        self.flip_seed, self.epoch = flip_seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = int(self.indices[i])
        stamp = np.array(self.stamps[row], dtype=np.float32)
        if self.flip_seed is not None:
            vertical, horizontal = (
                np.random.default_rng([self.flip_seed, self.epoch, i]).random(2) < 0.5
            )
            stamp = stamp[:, ::-1] if vertical else stamp
            stamp = stamp[:, :, ::-1] if horizontal else stamp
        return torch.from_numpy(np.ascontiguousarray(stamp)), torch.tensor(self.labels[row])


def robust_channel_scale(
    stamps: np.ndarray, rows: np.ndarray, *, seed: int = 0, n: int = 2000
) -> np.ndarray:
    """Per-channel noise level of stamps: `mad_sigma`, the robust standard deviation of the
    non-zero pixels of up to `n` sampled rows. Shape (3,), float32, > 0."""
    sample = np.sort(np.random.default_rng(seed).choice(rows, min(n, len(rows)), replace=False))
    pixels = (
        np.asarray(stamps[sample], dtype=np.float32)
        .transpose(1, 0, 2, 3)
        .reshape(stamps.shape[1], -1)
    )
    scale = np.ones(stamps.shape[1], dtype=np.float32)
    for c, values in enumerate(pixels):
        values = values[values != 0]
        if values.size:
            mad = mad_sigma(values)
            scale[c] = mad if np.isfinite(mad) and mad > 0 else 1.0
    return scale


def input_transform(
    preprocessing: str, scale: np.ndarray | None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """What the network is fed in training, batch (N, C, S, S) -> same shape, for a preprocessing
    and its scale (for "none", the input scale that is folded into conv1 afterwards, or None)."""
    if preprocessing != "none":
        return functools.partial(preprocess_pixels, preprocessing=preprocessing, scale=scale)
    if scale is not None:
        return lambda x: x / scale[None, :, None, None]
    return None


def _fold_scale(model: Network, scale: np.ndarray, *, inverse: bool = False) -> None:
    """The first layer (conv1) on x / scale == that layer with weights / scale on x: make the
    model take raw pixels (or, with `inverse`, take scaled pixels again)."""
    first = getattr(model, model.layers[0].name)
    shape = (1, -1) + (1,) * (first.weight.dim() - 2)
    factor = torch.from_numpy(np.asarray(scale, dtype=np.float32)).view(*shape)
    with torch.no_grad():
        first.weight.mul_(factor if inverse else 1.0 / factor)


def _batches(
    stamps: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    *,
    batch_size: int,
    rng: np.random.Generator | None,
    flips: bool,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    mask_augment: float = 0.0,
    rotations: bool = False,
):
    """Yield (x, y) tensors; shuffled, flipped (and transposed: `rotations`) and masked
    (`mask_blocks`) when `rng` is given.
    Whole batches are read with one sorted fancy index from the memory map (much faster than
    item by item)."""
    order = rng.permutation(indices) if rng is not None else indices
    for start in range(0, len(order), batch_size):
        rows = np.sort(order[start : start + batch_size])
        x = np.asarray(stamps[rows], dtype=np.float32)  # a copy: fancy indexing
        if rng is not None and mask_augment > 0:
            mask_blocks(x, rng.random(len(rows)) < mask_augment, rng)
        if transform is not None:
            x = transform(x)
        if rng is not None and flips:
            vertical, horizontal = rng.random((2, len(rows))) < 0.5
            x[vertical] = x[vertical][:, :, ::-1]
            x[horizontal] = x[horizontal][:, :, :, ::-1]
        if rng is not None and rotations:
            transposed = rng.random(len(rows)) < 0.5
            x[transposed] = x[transposed].transpose(0, 1, 3, 2)
        yield (
            torch.from_numpy(np.ascontiguousarray(x)),
            torch.from_numpy(labels[rows].astype(np.float32)),
        )


def mask_blocks(
    x: np.ndarray, which: np.ndarray, rng: np.random.Generator, *, keep: int = 3
) -> None:
    """Zero 1-3 random rectangles (sides 3 px to half the stamp) in all planes of stamps `which`.

    x : (N, C, S, S), changed in place; which : (N,) bool. Blocks stay `keep` px clear of the
    centre pixel, as a survey's flagged pixels are never the detection itself. Zeros are what
    `resize_stamps` makes of NaN and flagged pixels, so the model learns to look past them.
    """
    size = x.shape[-1]
    centre = size // 2
    for i in np.flatnonzero(which):
        for _ in range(int(rng.integers(1, 4))):
            h, w = rng.integers(3, size // 2 + 1, size=2)
            y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            if y0 - keep <= centre < y0 + h + keep and x0 - keep <= centre < x0 + w + keep:
                continue  # would cover the source
            x[i, :, y0 : y0 + h, x0 : x0 + w] = 0


def _evaluate(
    model: nn.Module, stamps, labels, indices, *, batch_size: int = 1024, transform=None
) -> tuple[float, np.ndarray]:
    """Mean BCE loss and reliabilities (N,) of `indices`, in their order."""
    model.eval()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total, scores = 0.0, []
    with torch.inference_mode():
        for x, y in _batches(
            stamps,
            labels,
            np.sort(indices),
            batch_size=batch_size,
            rng=None,
            flips=False,
            transform=transform,
        ):
            logits = model.logits(x)
            total += float(loss_fn(logits, y))
            scores.append(torch.sigmoid(logits).numpy())
    reliability = np.concatenate(scores) if scores else np.empty(0, np.float32)
    order = np.argsort(np.argsort(indices))  # back from sorted to the given order
    return total / max(len(indices), 1), reliability[order]


#: Fewest Real and fewest Bogus validation rows a cutoff is chosen from.
MIN_CUTOFF_ROWS = 10
#: Below this validation ROC AUC an automatic cutoff is warned about.
MIN_CUTOFF_AUC = 0.6


def choose_cutoff(
    labels: np.ndarray, scores: np.ndarray, snr: np.ndarray | None = None
) -> tuple[float, str]:
    """A cutoff from held-out (validation) scores, and how it was chosen.

    On detections with SNR > 5 (all when `snr` is None): the middle of the OSS-REQ-0353 window
    (purity >= 0.95 and completeness >= 0.90) when there is one, a margin against both edges;
    else the P = C crossing; else 0.5 (warned).

    Refused (InputError) when those rows hold fewer than `MIN_CUTOFF_ROWS` Real or Bogus: no
    cutoff can be chosen from them. Warned (RealBogusWarning) when the scores separate the
    classes with a ROC AUC below `MIN_CUTOFF_AUC`: the cutoff then means little.
    """
    keep = np.ones(len(labels), bool) if snr is None else np.asarray(snr) > 5
    n_real, n_bogus = int((labels[keep] == 1).sum()), int((labels[keep] == 0).sum())
    if min(n_real, n_bogus) < MIN_CUTOFF_ROWS:
        where = "" if snr is None else " with SNR > 5"
        msg = (
            f"cannot choose the cutoff automatically: the validation split has {n_real} Real and "
            f"{n_bogus} Bogus rows{where} (at least {MIN_CUTOFF_ROWS} of each are needed); pass "
            "--cutoff VALUE, or train on more labelled fields"
        )
        raise InputError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        auc = metrics.roc_auc(labels[keep], scores[keep])
    if not auc >= MIN_CUTOFF_AUC:
        warnings.warn(
            f"the model barely separates Real from Bogus on validation (ROC AUC {auc:.3f}, "
            f"scores {np.min(scores[keep]):.3f}-{np.max(scores[keep]):.3f}): the automatic "
            "cutoff means little; train longer (--epochs) or on more data",
            RealBogusWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        curve = metrics.purity_completeness(labels[keep], scores[keep])
        window = metrics.requirement_window(curve) if len(curve.thresholds) else None
        if window is not None:
            return float(
                (window.low + window.high) / 2
            ), "middle of the requirement window on validation"
        cross = metrics.crossing(curve) if len(curve.thresholds) else None
    if cross is not None:
        return float(cross.threshold), "P = C crossing on validation (no requirement window)"
    warnings.warn(
        "no requirement window and no purity = completeness crossing on validation: the card "
        "gets the default cutoff 0.5; pass --cutoff VALUE to choose one",
        RealBogusWarning,
        stacklevel=2,
    )
    return 0.5, "default 0.5 (no window or crossing on validation)"


def _rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """Purity and completeness of ``scores >= threshold`` by the metrics' counting core (NaN
    where undefined: nothing selected, or no Real row; reported as NaN, not warned)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        return metrics.rates_at(metrics.purity_completeness(labels, scores), threshold)


def _save_state(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


@dataclasses.dataclass(frozen=True)
class _Split:
    """Row numbers of a dataset for training: labelled rows and their split, balanced subsets."""

    rows: np.ndarray  # labelled rows
    split: np.ndarray  # "train" / "validation" / "test" per labelled row
    train: np.ndarray  # balanced training rows
    validation: np.ndarray  # balanced validation rows (early stopping)
    test: np.ndarray


def _split_rows(
    dataset: Dataset, table: pd.DataFrame, labels: np.ndarray, config: TrainConfig
) -> _Split:
    labelled = table["label"].notna().to_numpy()
    split = split_by_group(table[labelled], fractions=config.fractions, seed=config.seed)
    rows = np.flatnonzero(labelled)
    train_rows, val_rows, test_rows = (rows[split == s] for s in ("train", "validation", "test"))
    if config.balance:
        train_rows = train_rows[balance_by_subsampling(labels[train_rows], seed=config.seed)]
        val_rows = val_rows[balance_by_subsampling(labels[val_rows], seed=config.seed + 1)]
    if len(train_rows) == 0 or len(val_rows) == 0:
        n_groups = int(table.loc[labelled, "field"].nunique())
        msg = (
            f"{dataset.path}: too few labelled groups for a train/validation split "
            f"({len(train_rows)} train / {len(val_rows)} validation rows from {n_groups} "
            "field(s); rows of one field never cross splits): simulate more fields "
            "(realbogus simulate --visits), or label rows of more fields"
        )
        raise InputError(msg)
    return _Split(rows, split, train_rows, val_rows, test_rows)


@dataclasses.dataclass(frozen=True)
class _Start:
    """The network to train and how its inputs are scaled."""

    architecture: str
    model: Network
    preprocessing: str
    scale: np.ndarray | None  # the card's preprocessing_scale, or the input scale of "none"
    fold: (
        np.ndarray | None
    )  # for "none": x / fold during training, folded into the first layer after
    transform: Callable[[np.ndarray], np.ndarray] | None


def _start(
    config: TrainConfig, parent: ModelPackage | None, stamps: np.ndarray, train_rows: np.ndarray
) -> _Start:
    architecture = config.architecture or (parent.card.architecture if parent else "dmtn337-cnn")
    if parent is not None and parent.card.architecture != architecture:
        msg = f"parent {parent.version} is a {parent.card.architecture!r} network, not {architecture!r}"
        raise ConfigError(msg)
    model = build_model(architecture, stamps.shape[-1])
    preprocessing = config.preprocessing or (parent.card.preprocessing if parent else "asinh-noise")
    if parent is not None and parent.card.preprocessing != preprocessing:
        msg = f"parent {parent.version} uses preprocessing {parent.card.preprocessing!r}, not {preprocessing!r}"
        raise ConfigError(msg)
    if parent is not None and preprocessing != "none":
        scale = np.asarray(parent.card.preprocessing_scale, dtype=np.float32)
    elif preprocessing != "none" or config.input_scale:
        scale = robust_channel_scale(stamps, train_rows, seed=config.seed)
        if preprocessing == "asinh-noise":
            scale = scale / scale[0]  # each channel's noise in units of the difference's
    else:
        scale = None
    fold = scale if preprocessing == "none" else None
    if parent is not None:
        model.load_state_dict(parent.model.state_dict())
        if fold is not None:  # the parent takes raw pixels; we feed scaled ones
            _fold_scale(model, fold, inverse=True)
    transform = input_transform(preprocessing, scale)
    return _Start(architecture, model, preprocessing, scale, fold, transform)


@dataclasses.dataclass
class _Fit:
    best_loss: float = float("inf")
    best_state: dict | None = None
    bad_epochs: int = 0
    history: list = dataclasses.field(default_factory=list)


def _fit(
    start: _Start,
    stamps: np.ndarray,
    labels: np.ndarray,
    split: _Split,
    config: TrainConfig,
    state_path: Path,
    fingerprint: str,
    on_epoch: Callable[[EpochReport], None] | None,
    progress: Callable[[int, int], None] | None,
) -> _Fit:
    """The epochs, resumed from `state_path` when it holds this run's state; early stopping."""
    model, transform = start.model, start.transform
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    fit, start_epoch = _Fit(), 0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)  # our own file
        if state["fingerprint"] != fingerprint:
            msg = f"{state_path} belongs to a run with other settings or data; delete {state_path.parent} to start over"
            raise ConfigError(msg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        fit = _Fit(
            state["best_loss"],
            state["best_model"],
            state["bad_epochs"],
            json.loads(state["history"]),
        )

    n_batches = -(-len(split.train) // config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        if fit.bad_epochs >= config.patience:
            break
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(config, epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout draws of this epoch
        rng = np.random.default_rng([config.seed, epoch])
        model.train()
        running = 0.0
        batches = _batches(
            stamps,
            labels,
            split.train,
            batch_size=config.batch_size,
            rng=rng,
            flips=config.flips,
            transform=transform,
            mask_augment=config.mask_augment,
            rotations=config.rotations,
        )
        for b, (x, y) in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model.logits(x), y)
            loss.backward()
            optimizer.step()
            running += float(loss.detach()) * len(y)
            if progress is not None:
                progress(epoch * n_batches + b + 1, config.epochs * n_batches)
        val_loss, val_scores = _evaluate(
            model, stamps, labels, split.validation, transform=transform
        )
        purity, completeness = _rates(labels[split.validation], val_scores, config.threshold)
        improved = val_loss < fit.best_loss
        if improved:
            fit.best_loss, fit.bad_epochs = val_loss, 0
            fit.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            fit.bad_epochs += 1
        report = EpochReport(
            epoch, running / len(split.train), val_loss, purity, completeness, improved
        )
        fit.history.append(dataclasses.asdict(report))
        _save_state(
            state_path,
            {
                "fingerprint": fingerprint,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "best_loss": fit.best_loss,
                "bad_epochs": fit.bad_epochs,
                "best_model": fit.best_state,
                "history": json.dumps(fit.history),
            },
        )
        if on_epoch is not None:
            on_epoch(report)
    if fit.best_state is None:
        msg = f"{state_path}: no finished epoch to take weights from"
        raise ConfigError(msg)
    return fit


def train(
    data: str | os.PathLike | Dataset,
    out: str | os.PathLike,
    *,
    config: TrainConfig = TrainConfig(),
    parent: str | os.PathLike | ModelPackage | None = None,
    name: str = "realbogus",
    version: str | None = None,
    cutoff: float | str = "auto",
    threads: int | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Train (or fine-tune from `parent`) on a labelled dataset and write a model package.

    Parameters
    ----------
    data : dataset directory or Dataset
        Rows need `label` (1 Real, 0 Bogus; missing labels are skipped) and a grouping
        column `field` (else every row is its own group).
    out : path
        Package directory to write; `<out>.train/` holds the resumable run state.
    parent : package, optional
        Start from its weights and record its version as the card's `parent`.
    cutoff : float or "auto"
        The card's cutoff; "auto" chooses it on the validation split (`choose_cutoff`), on all
        its rows in their natural class mix (not the balanced subsample).
    progress : callable(done, total)
        Called after each training batch; `total` = epochs x batches.

    Returns
    -------
    Path of the written package.
    """
    out = Path(out)
    dataset = data if isinstance(data, Dataset) else open_dataset(data)
    table = dataset.table(columns=None)
    if "label" not in table:
        msg = f"{dataset.path}: no label column to train on"
        raise InputError(msg)
    if "field" not in table:
        table = table.assign(field=np.arange(len(table)))
    labels = table["label"].fillna(-1).to_numpy(dtype=np.float32)
    split = _split_rows(dataset, table, labels, config)
    parent_package = load_package(parent) if isinstance(parent, (str, os.PathLike)) else parent
    if parent_package is not None and parent_package.card.stamp_size != dataset.stamp_size:
        msg = f"parent {parent_package.version} takes {parent_package.card.stamp_size} px; dataset stamps are {dataset.stamp_size} px"
        raise InputError(msg)

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    stamps = stamp_memmap(dataset)
    start = _start(config, parent_package, stamps, split.train)
    state_dir = out.with_name(out.name + ".train")
    fingerprint = json.dumps(
        {
            "config": dataclasses.asdict(config),
            "data": dataset.manifest["content_hash"],
            "parent": parent_package.version if parent_package else None,
        },
        sort_keys=True,
    )
    fit = _fit(
        start, stamps, labels, split, config, state_dir / STATE, fingerprint, on_epoch, progress
    )
    model, transform = start.model, start.transform
    model.load_state_dict(fit.best_state)
    cutoff_note = "given"
    if cutoff == "auto":
        val_all = split.rows[split.split == "validation"]
        _, val_scores = _evaluate(model, stamps, labels, val_all, transform=transform)
        snr = table["snr"].to_numpy(float)[val_all] if "snr" in table else None
        cutoff, cutoff_note = choose_cutoff(labels[val_all], val_scores, snr)
    elif not isinstance(cutoff, (int, float)) or not 0 <= cutoff <= 1:
        msg = f"cutoff must be 'auto' or a number in [0, 1]; got {cutoff!r}"
        raise ConfigError(msg)
    test_metrics = {}
    if not len(split.test) and config.fractions[2] > 0:
        warnings.warn(
            f"{dataset.path}: no test rows (the split by field left none of {len(split.rows)} "
            f"labelled rows): "
            "the card has no test metrics; evaluate the model on another simulation "
            "(realbogus evaluate --data)",
            RealBogusWarning,
            stacklevel=2,
        )
    if len(split.test):
        _, test_scores = _evaluate(model, stamps, labels, split.test, transform=transform)
        purity, completeness = _rates(labels[split.test], test_scores, cutoff)
        test_metrics = {
            "test_rows": int(len(split.test)),
            "test_roc_auc": metrics.roc_auc(labels[split.test], test_scores),
            "test_purity_at_cutoff": purity,
            "test_completeness_at_cutoff": completeness,
        }
    card = ModelCard(
        name=name,
        version=version
        or f"{name}-{dataset.manifest['content_hash'].split(':')[-1][:8]}-s{config.seed}",
        parent=parent_package.version if parent_package else None,
        architecture=start.architecture,
        stamp_size=dataset.stamp_size,
        preprocessing=start.preprocessing,
        preprocessing_scale=[float(v) for v in start.scale]
        if start.preprocessing != "none"
        else None,
        cutoff=cutoff,
        pixel_units=dataset.manifest.get("provenance", {}).get("pixel_units"),
        survey=survey_family(dataset.manifest.get("provenance", {}).get("survey"))
        or (parent_package.card.model_survey if parent_package else None),
        hyperparameters={
            **dataclasses.asdict(config),
            "optimizer": "Adam",
            "loss": "BCE",
            "input_scale_folded_into_conv1": None
            if start.fold is None
            else [float(v) for v in start.fold],
        },
        training_data={
            "dataset": str(dataset.path),
            "content_hash": dataset.manifest["content_hash"],
            "counts": dataset.manifest.get("counts", {}),
            "n_train": int(len(split.train)),
            "n_validation": int(len(split.validation)),
            "n_test": int(len(split.test)),
            "split": "grouped by field, stratified by label and origin",
            "split_seed": config.seed,
        },
        metrics={
            "cutoff_choice": cutoff_note,
            "best_val_loss": fit.best_loss,
            "epochs_run": len(fit.history),
            "history": fit.history,
            **test_metrics,
        },
    )
    if start.fold is not None:
        _fold_scale(model, start.fold)  # the package takes raw pixels
    path = save_package(out, model, card, overwrite=True)
    shutil.rmtree(state_dir, ignore_errors=True)
    return path
