"""The Scorer: batched inference of a model package and the score table.

Score table (docs/design.md): `diaSourceId`, `reliability` (float32), `reliabilityVersion`,
`valid_fraction`, `edge`, `passes_cutoff` (reliability >= the card's cutoff). Every input row
gets a row, in input order; nothing is dropped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .dataset import Dataset
from .errors import ConfigError, StampShapeError
from .package import ModelPackage
from .stamps import Stamps, check_stamps
from .tables import atomic_path

__all__ = ["BACKENDS", "SCORE_COLUMNS", "Scorer", "export_onnx", "resolve_device", "score_table"]

#: Inference backends; "auto" picks ONNX Runtime on CPU when installed, torch otherwise.
BACKENDS = ("auto", "torch", "onnx")

SCORE_COLUMNS = ("diaSourceId", "reliability", "reliabilityVersion", "valid_fraction", "edge", "passes_cutoff")
Progress = Callable[[int, int], None]
# Measured on 2 cores (docs/benchmarks.md): ONNX Runtime is fastest at a few hundred stamps per
# call (the activations stay in cache); eager torch gains from big batches.
_DEFAULT_BATCH = {"onnx": 256, "torch": 1024}


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


def export_onnx(package: ModelPackage, path: str | os.PathLike | None = None) -> bytes:
    """The package's network as an ONNX graph (opset 17), built directly from its weights.

    Input ``stamps`` (N, 3, S, S) float32, output ``reliability`` (N,) float32. Dropout is an
    identity at inference and is left out. The graph is written atomically to `path` if given.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = package.model
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    size, channels = package.card.stamp_size, len(package.card.channels)
    nodes, current = [], "stamps"
    for i in (1, 2, 3):
        nodes += [
            helper.make_node("Conv", [current, f"conv{i}.weight", f"conv{i}.bias"], [f"c{i}"], kernel_shape=[5, 5]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
        current = f"p{i}"
    nodes += [
        helper.make_node("Flatten", [current], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "fc2.weight", "fc2.bias"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["prob"]),
        helper.make_node("Flatten", ["prob"], ["prob_flat"], axis=0),
        helper.make_node("Squeeze", ["prob_flat", "axis0"], ["reliability"]),
    ]
    initializers = [numpy_helper.from_array(v, name=k) for k, v in state.items()]
    initializers.append(numpy_helper.from_array(np.array([0], dtype=np.int64), name="axis0"))
    graph = helper.make_graph(
        nodes,
        f"{package.card.architecture}-{package.version}",
        [helper.make_tensor_value_info("stamps", TensorProto.FLOAT, ["n", channels, size, size])],
        [helper.make_tensor_value_info("reliability", TensorProto.FLOAT, ["n"])],
        initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="realbogus")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    data = onnx_model.SerializeToString()
    if path is not None:
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    return data


def _onnx_session(package: ModelPackage, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(export_onnx(package), options, providers=["CPUExecutionProvider"])


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


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
    batch_size : int, optional
        Stamps per forward pass; default 256 for ONNX Runtime, 1024 for torch (on CPU ~2x
        faster than Rubin's fixed 64).
    device : str
        'auto', 'cpu' or 'cuda[:i]'.
    backend : str
        'auto' (ONNX Runtime on CPU when installed, else torch), 'torch' or 'onnx'.
    threads : int, optional
        Intra-op threads (default: all cores).
    """

    def __init__(
        self,
        package: ModelPackage,
        *,
        batch_size: int | None = None,
        device: str = "auto",
        backend: str = "auto",
        threads: int | None = None,
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            msg = f"batch_size must be a positive integer; got {batch_size!r}"
            raise ConfigError(msg)
        if backend not in BACKENDS:
            msg = f"backend must be one of {BACKENDS}; got {backend!r}"
            raise ConfigError(msg)
        self.package = package
        self.card = package.card
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and _onnx_available() else "torch"
        if backend == "onnx":
            if self.device.type != "cpu":
                msg = f"the onnx backend runs on the CPU; got device {device!r}"
                raise ConfigError(msg)
            if not _onnx_available():
                msg = "backend 'onnx' needs the onnx and onnxruntime packages"
                raise ConfigError(msg)
            self._session = _onnx_session(package, threads)
        else:
            if threads:
                torch.set_num_threads(threads)
            self._model = package.model.to(self.device).eval()
        self.backend = backend
        self.batch_size = batch_size or _DEFAULT_BATCH[backend]

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
                batch = data[start : start + self.batch_size]
                if self.backend == "onnx":
                    out[start : start + len(batch)] = self._session.run(None, {"stamps": np.ascontiguousarray(batch)})[0]
                else:
                    tensor = _as_tensor(batch).to(self.device)
                    out[start : start + len(batch)] = self._model(tensor).float().cpu().numpy()
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
