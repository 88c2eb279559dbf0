"""The Scorer: batched inference of a model package, arrays in, score table out (no file I/O).

Score table (docs/design.md): `diaSourceId`, `reliability` (float32), `reliabilityVersion`,
`valid_fraction`, `edge`, `passes_cutoff` (reliability >= the card's cutoff), `status` and
`reason`. Every input row gets a row, in input order; nothing is dropped. A row that is not
scored (docs/design.md, "Input faults") has reliability NaN, `passes_cutoff` False, a `status`
code other than "scored" and a `reason` in words: a stamp with a valid fraction under
`MIN_VALID_FRACTION` or a channel without one valid pixel, or a row refused upstream (position
off the image, an alert that cannot be converted).

Backends: ONNX Runtime on the CPU (the default when installed; `realbogus.inference.onnx`),
and torch (on a GPU when present). Precisions (`precision=`): fp32, the default (bit-reproducible
re-scoring); bf16 (torch/oneDNN convolutions in bfloat16, `inference.bf16`) and int8 (ONNX
Runtime's static int8 graph, `quantize_int8`), each used only when it passes the gate of
`inference.precision` on check stamps from the input, else fp32 with the reason in
`Scorer.precision_check`. The precision that computed a table is in its `precision` column.
Each ONNX session's graph starts at the first convolution: the card's transform runs in numpy
on each batch (`preprocess_array`), ~30x cheaper than in the graph. A card's observing-condition correction
(`realbogus.model.conditions`) is applied to the network's scores after either backend.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import ConfigError, StampShapeError
from ..model.package import ModelPackage
from ..model.transforms import preprocess, preprocess_array
from ..numeric import available_cores
from ..stamps import CHANNELS, Stamps, check_stamps
from .onnx import (
    INT8_TOLERANCE,
    Int8Model,
    OnnxRunner,
    cached_graph,
    check_finite,
    export_onnx,
    onnx_available,
    quantize_int8,
)
from .precision import PRECISIONS, PrecisionCheck, check_precision

if TYPE_CHECKING:
    import torch

__all__ = [
    "BACKENDS",
    "Device",
    "MIN_VALID_FRACTION",
    "SCORE_COLUMNS",
    "SCORED",
    "Scorer",
    "resolve_device",
    "score_table",
    "stamp_faults",
]

#: Inference backends; "auto" picks ONNX Runtime on CPU when installed, torch otherwise.
BACKENDS = ("auto", "torch", "onnx")
SCORE_COLUMNS = (
    "diaSourceId",
    "reliability",
    "reliabilityVersion",
    "valid_fraction",
    "edge",
    "passes_cutoff",
    "precision",
    "status",
    "reason",
)
#: `status` of a row that was scored; any other value comes with reliability NaN and a reason.
SCORED = "scored"
#: Stamps with fewer finite, on-image pixels than this fraction of 3 S^2 are not scored: less
#: than a quarter of the box, e.g. a detection beyond an image corner, or mostly masked. Real
#: alerts sit above it: Rubin's smallest cutouts (30 x 30 px in a 51 px stamp) give 0.35, and the
#: lowest of the 608 ZTF alerts in shared/data is 0.46 (docs/design.md, "Input faults").
MIN_VALID_FRACTION = 0.25
Progress = Callable[[int, int], None]
# A batch-size sweep of one single-threaded ONNX Runtime session (thread CPU time, 2 shared
# cores) gave a few per cent more stamps per CPU-second at 16-32 stamps per call than at 256+;
# small batches also balance the per-core sessions. Eager torch on the CPU gains from big batches.
# bf16 (oneDNN, one thread per network): batches of 32-96 were within ~5 % of each other per
# CPU-second at 51 and 63 px in a sweep under load (2026-12-03); 128 was slower.
_DEFAULT_BATCH = {"onnx": 32, "torch": 1024, "cuda": 4096, "int8": 32, "bf16": 64}


@dataclass(frozen=True)
class Device:
    """Where the Scorer runs, without importing torch: `type` 'cpu' or 'cuda', `index` or None.

    `str()` gives torch's spelling ('cpu', 'cuda', 'cuda:1'); `as_torch()` the torch.device.
    """

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def as_torch(self) -> torch.device:
        """The torch.device (imports torch)."""
        import torch

        return torch.device(str(self))


def _cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch when torch cannot have a GPU.

    A torch wheel built for the CPU only (local version label '+cpu', as the CPU wheels of the
    PyTorch index and this project's constraints are) has no CUDA device, so asking would only
    cost the ~1 s import of torch that ONNX Runtime scoring does not need.
    """
    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return False
        try:
            if importlib.metadata.version("torch").endswith("+cpu"):
                return False
        except importlib.metadata.PackageNotFoundError:
            pass
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str = "auto") -> Device:
    """'auto' (a GPU when present, else CPU), 'cpu' or 'cuda[:i]'; a missing GPU is an error."""
    if device == "auto":
        return Device("cuda" if _cuda_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        msg = f"--device (device) must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}"
        raise ConfigError(msg)
    if device.startswith("cuda") and not _cuda_available():
        msg = f"device {device!r} requested but no CUDA GPU is available"
        raise ConfigError(msg)
    if device == "cpu":
        return Device("cpu")
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        msg = f"--device (device) must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}"
        raise ConfigError(msg)
    return Device("cuda", int(index) if index else None)


def score_table(
    ids: np.ndarray,
    reliability: np.ndarray,
    *,
    version: str,
    cutoff: float,
    valid_fraction: np.ndarray,
    edge: np.ndarray,
    precision: str = "fp32",
    status: np.ndarray | None = None,
    reason: np.ndarray | None = None,
) -> pd.DataFrame:
    """Assemble the score table; all arrays have shape (N,).

    `precision`: how the reliabilities were computed ('fp32', 'bf16', 'int8');
    `reliabilityVersion` stays the model's. `status` (default: all `SCORED`) and `reason`
    (default: "") are strings; rows whose status is not `SCORED` get reliability NaN and never
    pass the cutoff.
    """
    n = len(reliability)
    status = np.full(n, SCORED, object) if status is None else np.asarray(status, object)
    reason = np.full(n, "", object) if reason is None else np.asarray(reason, object)
    reliability = np.where(status == SCORED, np.asarray(reliability, np.float32), np.nan)
    reliability = reliability.astype(np.float32)
    return pd.DataFrame(
        {
            "diaSourceId": np.asarray(ids),
            "reliability": reliability,
            "reliabilityVersion": pd.Series([version] * n, dtype="string"),
            "valid_fraction": np.asarray(valid_fraction, dtype=np.float32),
            "edge": np.asarray(edge, dtype=bool),
            "passes_cutoff": reliability >= cutoff,
            "precision": pd.Series([precision] * len(reliability), dtype="string"),
            "status": pd.Series(status, dtype="string"),
            "reason": pd.Series(reason, dtype="string"),
        }
    )


def stamp_faults(
    stamps: Stamps, status: np.ndarray | None = None, reason: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Status and reason of each stamp (object arrays of shape (N,)): `SCORED`, or why not.

    Rows refused upstream (`status` not `SCORED`) keep their status and reason; the others are
    refused when no pixel is valid ("no-valid-pixels"), when one channel has no valid pixel
    (where `stamps.channel_valid` is known), or when `valid_fraction` < `MIN_VALID_FRACTION`
    ("low-valid-fraction").
    """
    n = len(stamps)
    status = np.full(n, SCORED, object) if status is None else np.asarray(status, object).copy()
    reason = np.full(n, "", object) if reason is None else np.asarray(reason, object).copy()
    if status.shape != (n,) or reason.shape != (n,):
        msg = f"status and reason must have shape ({n},) to match the stamps; got {status.shape}, {reason.shape}"
        raise StampShapeError(msg)
    open_ = status == SCORED
    valid = np.asarray(stamps.valid_fraction, np.float32)
    low = open_ & (valid < MIN_VALID_FRACTION)
    status[low] = "low-valid-fraction"
    for i in np.flatnonzero(low):
        reason[i] = f"valid fraction {valid[i]:.3f} is below the floor {MIN_VALID_FRACTION:g}"
    blank = open_ & (valid <= 0)
    if stamps.channel_valid is not None:
        empty = np.asarray(stamps.channel_valid) <= 0
        for i in np.flatnonzero(open_ & empty.any(axis=1) & ~blank):
            status[i] = "no-valid-pixels"
            names = ", ".join(n for n, e in zip(CHANNELS, empty[i], strict=True) if e)
            reason[i] = f"no valid pixel in the {names} stamp"
    status[blank] = "no-valid-pixels"
    reason[blank] = "no finite, on-image pixel in the stamp"
    return status, reason


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view; read-only arrays (Arrow buffers) are fine since inference only reads."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class Scorer:
    """Scores stamps with a model package.

    Parameters
    ----------
    package : ModelPackage
        The model and its card (stamp size, preprocessing, cutoff, version).
    batch_size : int, optional
        Stamps per forward pass; default 32 for ONNX Runtime (per core), 1024 for torch on the
        CPU, 4096 on a GPU.
    device : str
        'auto', 'cpu' or 'cuda[:i]'.
    backend : str
        'auto' (torch on a GPU when one is present, else ONNX Runtime when installed, else
        torch), 'torch' or 'onnx'.
    threads : int, optional
        CPU cores to use (default: all this process may use). ONNX Runtime runs one
        single-threaded session per core; torch gets `threads` intra-op threads.
    precision : str
        'fp32' (default), 'bf16' or 'int8'. A reduced precision needs `check_stamps` and is used
        only when, on them, its reliabilities stay within 0.01 of fp32's and `passes_cutoff`
        changes for < 0.1 % of them (`inference.precision`); otherwise the Scorer scores in
        fp32 and `precision_check.reason` says why. bf16 runs on the CPU (oneDNN), int8 on
        the onnx backend.
    int8 : bool or Int8Model
        The strict int8 path (before `precision=`). True: quantise the ONNX graph to int8 now
        (`quantize_int8`), which needs `check_stamps` and is refused (ConfigError) when its
        scores differ from fp32 by more than `int8_tolerance` on them. An `Int8Model` already accepted for this package is used as is.
    check_stamps : ndarray of shape (N, 3, S, S), float32, or Stamps, optional
        Representative stamps the int8 graph is calibrated and verified on.
    int8_tolerance : float
        Largest accepted |int8 - fp32| reliability on the check stamps.

    Attributes
    ----------
    backend : str
        'onnx' or 'torch', as resolved.
    precision : str
        The precision in use: 'fp32', 'bf16' or 'int8'.
    requested_precision : str
        The precision asked for.
    precision_check : PrecisionCheck or None
        The gate's measurement of a requested reduced precision (accepted or not).
    int8_model : Int8Model or None
        The accepted int8 graph and its measured deviation from fp32.
    """

    def __init__(
        self,
        package: ModelPackage,
        *,
        batch_size: int | None = None,
        device: str = "auto",
        backend: str = "auto",
        threads: int | None = None,
        int8: bool | Int8Model = False,
        check_stamps: np.ndarray | Stamps | None = None,
        int8_tolerance: float = INT8_TOLERANCE,
        precision: str = "fp32",
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            msg = f"--batch-size (batch_size) must be a positive integer; got {batch_size!r}"
            raise ConfigError(msg)
        if precision not in PRECISIONS:
            msg = f"precision must be one of {PRECISIONS}; got {precision!r}"
            raise ConfigError(msg)
        if int8 and precision != "fp32":
            msg = "give int8= (strict: refused is an error) or precision= (refused falls back to fp32), not both"
            raise ConfigError(msg)
        if precision != "fp32" and check_stamps is None:
            msg = (
                f"precision {precision!r} needs check_stamps: stamps from the input to compare it "
                "with fp32 on (or score in fp32)"
            )
            raise ConfigError(msg)
        if backend not in BACKENDS:
            msg = f"--backend (backend) must be one of {BACKENDS}; got {backend!r}"
            raise ConfigError(msg)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            msg = f"--threads (threads) must be a positive integer; got {threads!r}"
            raise ConfigError(msg)
        self.package = package
        self.card = package.card
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and onnx_available() else "torch"
        if precision == "int8" and backend == "torch":
            msg = "precision 'int8' runs on the onnx backend (CPU); give --backend onnx or auto"
            raise ConfigError(msg)
        if precision == "bf16" and self.device.type != "cpu":
            msg = f"precision 'bf16' runs on the CPU (oneDNN); got device {device!r}"
            raise ConfigError(msg)
        if int8 and backend != "onnx":
            msg = f"int8 scoring runs on the onnx backend (CPU); got backend {backend!r} on {self.device}"
            raise ConfigError(msg)
        if int8 is True and check_stamps is None:
            msg = "int8 scoring needs check_stamps: representative stamps to verify it against fp32 on"
            raise ConfigError(msg)
        if backend == "onnx":
            if self.device.type != "cpu":
                msg = f"the onnx backend runs on the CPU; got device {device!r}"
                raise ConfigError(msg)
            if not onnx_available():
                msg = "backend 'onnx' needs the onnx and onnxruntime packages"
                raise ConfigError(msg)
        self.backend = backend
        self.threads = threads or available_cores()
        if isinstance(int8, Int8Model):
            if (
                int8.fp32_sha256
                != hashlib.sha256(export_onnx(package, preprocessed_input=True)).hexdigest()
            ):
                msg = f"the given Int8Model was quantised from other weights than package {package.version}"
                raise ConfigError(msg)
            self.int8_model: Int8Model | None = int8
        elif int8:
            self.int8_model = quantize_int8(package, check_stamps, tolerance=int8_tolerance)
        else:
            self.int8_model = None
        self.precision = "int8" if self.int8_model is not None else "fp32"
        self.requested_precision = self.precision if int8 else precision
        self.precision_check: PrecisionCheck | None = None
        default = "cuda" if self.device.type == "cuda" else backend
        self._batch_size = batch_size
        self.batch_size = batch_size or _DEFAULT_BATCH[default]
        self._start()
        if precision != "fp32":
            self._choose_precision(precision, check_stamps)

    def _choose_precision(self, precision: str, check_stamps: np.ndarray | Stamps) -> None:
        """Score the check stamps in fp32 and in `precision`; keep `precision` if it passes."""
        check = check_stamps.data if isinstance(check_stamps, Stamps) else check_stamps
        check = np.ascontiguousarray(
            self._checked_stamps(check, name="check stamps"), dtype=np.float32
        )
        if len(check) < 2:
            msg = f"precision {precision!r} needs at least 2 check stamps; got {len(check)}"
            raise ConfigError(msg)
        fp32 = self.predict(check)
        fp32_state = (self.backend, self.precision, self.int8_model, self.batch_size)
        if precision == "int8":
            # Quantised under a loose bound here: the gate below decides, with the flip rate.
            self.int8_model = quantize_int8(self.package, check, tolerance=0.999)
            self.backend = "onnx"
        self.precision = precision
        self.batch_size = self._batch_size or _DEFAULT_BATCH[precision]
        self._start()
        self.precision_check = check_precision(
            precision, fp32, self.predict(check), self.card.cutoff
        )
        if not self.precision_check.accepted:
            self.backend, self.precision, self.int8_model, self.batch_size = fp32_state
            self._start()

    def _checked_stamps(self, data: np.ndarray, name: str) -> np.ndarray:
        return check_stamps(data, size=self.card.stamp_size, name=name)

    def _start(self) -> None:
        """Get the graph (onnx), build the networks (bf16) or place the model (torch); also run
        after unpickling. ONNX Runtime's sessions are made on the first `predict`: a process
        whose workers score (`realbogus.alerts.score_alerts`) never makes or imports them."""
        if self.precision == "bf16":
            import torch

            from .bf16 import Bf16Network, Bf16Session

            torch.set_num_threads(1)  # one single-threaded network per core, as ONNX Runtime
            network = Bf16Network(self.package.model)
            self._runner = OnnxRunner(
                None,
                self.threads,
                functools.partial(preprocess_array, self.card),
                sessions=[Bf16Session(network)] * self.threads,
            )
        elif self.backend == "onnx":
            if self.int8_model is not None:
                self._onnx = self.int8_model.onnx
            elif getattr(self, "_onnx", None) is None or getattr(self, "_onnx_int8", False):
                self._onnx = cached_graph(self.package, preprocessed_input=True)
            self._onnx_int8 = self.int8_model is not None
            self._runner = None  # sessions on first use (`_onnx_runner`)
        else:
            import torch

            if self.device.type == "cpu":
                torch.set_num_threads(self.threads)
            self._model = self.package.model.to(self.device.as_torch()).eval()

    def __getstate__(self) -> dict:
        # Sessions and thread pools do not pickle; they are rebuilt on the other side (Dask,
        # the alert workers) from the graph's bytes, which travel (no second export there).
        state = dict(self.__dict__)
        for key in ("_runner", "_model"):
            state.pop(key, None)
        state["device"] = str(self.device)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.device = resolve_device(state["device"])
        self._start()

    @property
    def version(self) -> str:
        """Model version written into `reliabilityVersion`."""
        return self.card.version

    @property
    def fingerprint(self) -> str:
        """sha256 of what decides the scores: version, backend, precision, weights or graph."""
        digest = hashlib.sha256(f"{self.version}|{self.backend}|{self.precision}|".encode())
        if self.card.conditions is not None:
            digest.update(self.card.conditions.model_dump_json().encode())
        if self.backend == "onnx" and self.precision != "bf16":
            digest.update(self._onnx)
        else:
            for name, value in sorted(self.package.weights.items()):
                digest.update(name.encode())
                digest.update(value.tobytes())
        return "sha256:" + digest.hexdigest()

    def predict(self, data: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """Reliabilities of stamps: the network's, corrected for observing conditions where the
        card has a correction.

        Parameters
        ----------
        data : ndarray of shape (N, 3, S, S), float32
            Stamps in [difference, science, template] order, finite, S = the card's stamp size.
            C-contiguous input is used without a copy.

        Returns
        -------
        ndarray of shape (N,), float32, in [0, 1]
        """
        # Shape and dtype here; finiteness per batch in the workers, while the batch is in cache.
        if isinstance(data, np.ndarray):
            check_stamps(data[:0], size=self.card.stamp_size)
        else:
            check_stamps(data, size=self.card.stamp_size)
        n = len(data)
        out = np.empty(n, dtype=np.float32)
        if self.backend == "onnx" or self.precision == "bf16":
            self._onnx_runner().run(data, out, self.batch_size, progress)
            return self._corrected(out, data)
        import torch

        device = self.device.as_torch()
        tf32_off = (
            torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), tf32_off:
            for start in range(0, n, self.batch_size):
                batch = data[start : start + self.batch_size]
                check_finite(batch, start)
                tensor = _as_tensor(np.ascontiguousarray(batch)).to(device, non_blocking=False)
                out[start : start + len(batch)] = (
                    self._model(preprocess(self.card, tensor)).float().cpu().numpy()
                )
                if progress is not None:
                    progress(start + len(batch), n)
        return self._corrected(out, data)

    def _onnx_runner(self) -> OnnxRunner:
        """The sessions of `_onnx`, one single-threaded session per thread; made once."""
        if self._runner is None:
            prepare = functools.partial(preprocess_array, self.card)
            self._runner = OnnxRunner(self._onnx, self.threads, prepare)
        return self._runner

    def _corrected(self, reliability: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The card's observing-condition correction, if it has one (`realbogus.model.conditions`)."""
        if self.card.conditions is None:
            return reliability
        return self.card.conditions.apply(reliability, data)

    def score_stamps(
        self,
        stamps: Stamps,
        ids: np.ndarray,
        *,
        status: np.ndarray | None = None,
        reason: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> pd.DataFrame:
        """The score table for `stamps`, one row per stamp in order, `ids` of shape (N,).

        `status`, `reason` (shape (N,), optional): rows already refused upstream (status other
        than `SCORED`); they and stamps that fail `stamp_faults` get reliability NaN.
        """
        if not isinstance(stamps, Stamps):
            msg = (
                f"stamps must be a realbogus.stamps.Stamps (from cut_stamps or fit_stamp); got "
                f"{type(stamps).__name__}: for a bare (N, 3, S, S) array use Scorer.predict"
            )
            raise StampShapeError(msg)
        ids = np.asarray(ids)
        if ids.shape != (len(stamps),):
            msg = f"ids must have shape ({len(stamps)},) to match the stamps; got {ids.shape}"
            raise StampShapeError(msg)
        status, reason = stamp_faults(stamps, status, reason)
        scored = status == SCORED
        if scored.all():
            reliability = self.predict(stamps.data, progress=progress)
        else:  # rows not scored are never run through the network
            reliability = np.full(len(stamps), np.nan, np.float32)
            if scored.any():
                reliability[scored] = self.predict(
                    np.ascontiguousarray(stamps.data[scored]), progress=progress
                )
        return score_table(
            ids,
            reliability,
            version=self.version,
            cutoff=self.card.cutoff,
            valid_fraction=stamps.valid_fraction,
            edge=stamps.edge,
            precision=self.precision,
            status=status,
            reason=reason,
        )

    def score_part(
        self, table: pd.DataFrame, stamps: Stamps, *, first_row: int = 0
    ) -> pd.DataFrame:
        """The score table of one dataset part; ids are `diaSourceId`, else global row numbers.

        `first_row` is the dataset row number of the part's first row.
        """
        if "diaSourceId" in table:
            ids = table["diaSourceId"].to_numpy()
        else:
            ids = np.arange(first_row, first_row + len(table), dtype=np.int64)
        return self.score_stamps(stamps, ids)
