"""The Scorer: batched inference of a model package and the score table.

Score table (docs/design.md): `diaSourceId`, `reliability` (float32), `reliabilityVersion`,
`valid_fraction`, `edge`, `passes_cutoff` (reliability >= the card's cutoff). Every input row
gets a row, in input order; nothing is dropped.

Backends: ONNX Runtime on the CPU (the default when installed; the graph is built from the
package weights by `export_onnx`), optionally int8-quantised (`quantize_int8`, accepted only when
its scores stay within a tolerance of fp32 on check stamps), and torch (on a GPU when present).
On the CPU the ONNX backend runs one single-threaded session per core, each pulling batches
from one shared queue (ONNX Runtime releases the GIL): on a shared 2-core machine this beats one
session with two intra-op threads, whose threads spin and wait on each other
(docs/benchmarks.md). Each session's graph starts at the first convolution: the card's pixel
preprocessing runs in numpy on each batch (`preprocess_array`), ~30x cheaper than in the graph.
A card's observing-condition correction (`realbogus.conditions`) is applied to the network's
scores after either backend.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .dataset import Dataset
from .errors import ConfigError, StampShapeError
from .package import NOISE_FLOOR, NOISE_STEP, ModelPackage, preprocess, preprocess_array
from .stamps import Stamps, check_stamps
from .tables import atomic_path

__all__ = [
    "BACKENDS",
    "SCORE_COLUMNS",
    "INT8_TOLERANCE",
    "Int8Model",
    "Scorer",
    "available_cores",
    "export_onnx",
    "quantize_int8",
    "resolve_device",
    "sample_check_stamps",
    "score_table",
]

#: Inference backends; "auto" picks ONNX Runtime on CPU when installed, torch otherwise.
BACKENDS = ("auto", "torch", "onnx")
#: Largest accepted |int8 score - fp32 score| on the check stamps.
INT8_TOLERANCE = 0.01

SCORE_COLUMNS = (
    "diaSourceId",
    "reliability",
    "reliabilityVersion",
    "valid_fraction",
    "edge",
    "passes_cutoff",
)
Progress = Callable[[int, int], None]
Prepare = Callable[[np.ndarray], np.ndarray]
# A batch-size sweep of one single-threaded ONNX Runtime session (thread CPU time, 2 shared
# cores) gave a few per cent more stamps per CPU-second at 16-32 stamps per call than at 256+;
# small batches also balance the per-core sessions. Eager torch on the CPU gains from big batches.
_DEFAULT_BATCH = {"onnx": 32, "torch": 1024, "cuda": 4096}
_CALIBRATION_STAMPS = 1024


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else `os.cpu_count()`)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


def export_onnx(
    package: ModelPackage,
    path: str | os.PathLike | None = None,
    *,
    crop: bool = True,
    preprocessed_input: bool = False,
) -> bytes:
    """The package's network as an ONNX graph (opset 17), built directly from its weights.

    Input ``stamps`` (N, 3, S, S) float32, output ``reliability`` (N,) float32. Dropout is an
    identity at inference and is left out. With `crop` (the default) each conv block's input is
    cropped to the rows and columns that its floor-mode 2x2 max-pool reads (for S = 51: 50, 22
    and 8 of 51, 23 and 9), so the convolutions skip outputs the pool would drop: the same
    numbers for ~12 % fewer multiply-adds; ``crop=False`` gives the plain layer-for-layer graph.
    The graph is written atomically to `path` if given. It applies the card's preprocessing
    itself ('asinh-noise': the noise by TopK); with `preprocessed_input` it starts at the first
    convolution and takes ``stamps`` already preprocessed by `preprocess_array`, which is what
    the Scorer does: numpy's selection and SIMD arcsinh cost ~10 us per 63-px stamp where ONNX
    Runtime's TopK and scalar Asinh cost ~300 us, as much as the convolutions.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = package.model
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    size, channels = package.card.stamp_size, len(package.card.channels)
    kernel, pool = 5, 2
    constants = {"axis0": [0]}
    nodes, current, side = [], "stamps", size
    if (
        package.card.preprocessing != "none" and not preprocessed_input
    ):  # the card's preprocessing, inside the graph
        state["preprocessing_scale"] = np.asarray(
            package.card.preprocessing_scale, dtype=np.float32
        ).reshape(1, -1, 1, 1)
        scale = "preprocessing_scale"
        if package.card.preprocessing == "asinh-noise":
            nodes += _noise_nodes(size, constants)
            nodes.append(
                helper.make_node("Mul", ["preprocessing_scale", "noise4"], ["noise_scale"])
            )
            scale = "noise_scale"
        nodes += [
            helper.make_node("Div", ["stamps", scale], ["scaled"]),
            helper.make_node("Asinh", ["scaled"], ["preprocessed"]),
        ]
        current = "preprocessed"
    for i in (1, 2, 3):
        used = (side - kernel + 1) // pool * pool + kernel - 1  # input side the pooled outputs read
        if crop and used < side:
            constants.update({"hw_axes": [2, 3], "hw_start": [0, 0], f"hw_end{i}": [used, used]})
            nodes.append(
                helper.make_node("Slice", [current, "hw_start", f"hw_end{i}", "hw_axes"], [f"s{i}"])
            )
            current = f"s{i}"
        nodes += [
            helper.make_node(
                "Conv",
                [current, f"conv{i}.weight", f"conv{i}.bias"],
                [f"c{i}"],
                kernel_shape=[kernel] * 2,
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            helper.make_node(
                "MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[pool] * 2, strides=[pool] * 2
            ),
        ]
        current, side = f"p{i}", (side - kernel + 1) // pool
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
    initializers += [
        numpy_helper.from_array(
            v if isinstance(v, np.ndarray) else np.array(v, dtype=np.int64), name=k
        )
        for k, v in constants.items()
    ]
    graph = helper.make_graph(
        nodes,
        f"{package.card.architecture}-{package.version}",
        [helper.make_tensor_value_info("stamps", TensorProto.FLOAT, ["n", channels, size, size])],
        [helper.make_tensor_value_info("reliability", TensorProto.FLOAT, ["n"])],
        initializers,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="realbogus"
    )
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    data = onnx_model.SerializeToString()
    if path is not None:
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    return data


def _noise_nodes(size: int, constants: dict) -> list:
    """ONNX nodes computing `realbogus.package.stamp_noise` of input ``stamps`` as ``noise4`` (N, 1, 1, 1)."""
    from onnx import helper

    n = len(range(0, size, NOISE_STEP)) ** 2
    constants.update(
        {
            "d_start": [0, 0, 0],
            "d_end": [1, size, size],
            "d_axes": [1, 2, 3],
            "d_steps": [1, NOISE_STEP, NOISE_STEP],
            "n_pixels": [n],
            "n_last": [n - 1],
            "two": [2],
            "axis1": [1],
            "shape4": [-1, 1, 1, 1],
        }
    )
    floats = {"zero": 0.0, "mad_factor": 1.4826, "noise_floor": NOISE_FLOOR}
    constants.update({name: np.array([value], np.float32) for name, value in floats.items()})
    return [
        helper.make_node("Slice", ["stamps", "d_start", "d_end", "d_axes", "d_steps"], ["d_sub"]),
        helper.make_node("Abs", ["d_sub"], ["d_abs4"]),
        helper.make_node("Flatten", ["d_abs4"], ["d_abs"], axis=1),
        helper.make_node(
            "TopK", ["d_abs", "n_pixels"], ["d_sorted", "d_order"], axis=1, largest=0, sorted=1
        ),
        helper.make_node("Equal", ["d_abs", "zero"], ["d_is_zero"]),
        helper.make_node("Cast", ["d_is_zero"], ["d_zero_int"], to=7),  # int64
        helper.make_node("ReduceSum", ["d_zero_int", "axis1"], ["zeros"], keepdims=1),
        helper.make_node("Sub", ["n_pixels", "zeros"], ["valid"]),
        helper.make_node("Div", ["valid", "two"], ["half"]),  # integer division
        helper.make_node("Add", ["zeros", "half"], ["middle_raw"]),
        helper.make_node("Min", ["middle_raw", "n_last"], ["middle"]),
        helper.make_node("GatherElements", ["d_sorted", "middle"], ["median"], axis=1),
        helper.make_node("Mul", ["median", "mad_factor"], ["mad"]),
        helper.make_node("Max", ["mad", "noise_floor"], ["stamp_noise"]),
        helper.make_node("Reshape", ["stamp_noise", "shape4"], ["noise4"]),
    ]


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _session(model: bytes, threads: int):
    """An ONNX Runtime CPU session with our options (graph fully optimised, no spinning)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if threads > 1:
        # Spinning threads burn the cores other sessions (or other processes) need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _check_finite(batch: np.ndarray, start: int) -> None:
    # A float32 sum is NaN/inf whenever a pixel is (rarely also on overflow: then look closer).
    if math.isfinite(float(batch.sum(dtype=np.float32))):
        return
    finite = np.isfinite(batch).all(axis=(1, 2, 3))
    if finite.all():
        return
    first = start + int(np.argmin(finite))
    msg = (
        f"stamps contain non-finite pixels (first in stamp {first}); cut them with "
        "cut_stamps/fit_stamp, which zero them"
    )
    raise StampShapeError(msg)


def _run_batch(
    session, data: np.ndarray, start: int, batch_size: int, out: np.ndarray, prepare: Prepare | None
) -> int:
    batch = np.ascontiguousarray(data[start : start + batch_size])
    _check_finite(batch, start)
    out[start : start + len(batch)] = session.run(
        None, {"stamps": batch if prepare is None else prepare(batch)}
    )[0]
    return len(batch)


class _OnnxRunner:
    """`workers` single-threaded ONNX Runtime sessions pulling batches from one queue.

    With one worker (or one batch) the batches run in the calling thread. ONNX Runtime and
    numpy's loops release the GIL, so worker threads run on separate cores. `prepare` turns each
    batch of stamps into the graph's input (`preprocess_array`), while the batch is in cache.
    """

    def __init__(self, model: bytes, workers: int, prepare: Prepare | None = None) -> None:
        self.workers = workers
        self.prepare = prepare
        self.sessions = [_session(model, 1) for _ in range(workers)]

    def run(
        self, data: np.ndarray, out: np.ndarray, batch_size: int, progress: Progress | None
    ) -> None:
        n = len(data)
        if self.workers == 1 or n <= batch_size:
            for start in range(0, n, batch_size):
                done = start + _run_batch(
                    self.sessions[0], data, start, batch_size, out, self.prepare
                )
                if progress is not None:
                    progress(done, n)
            return
        starts = itertools.count(0, batch_size)  # next() is atomic under the GIL
        done = [0] * self.workers
        stop = threading.Event()

        def work(i: int) -> None:
            while not stop.is_set():
                start = next(starts)
                if start >= n:
                    return
                done[i] += _run_batch(self.sessions[i], data, start, batch_size, out, self.prepare)

        with ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="realbogus-onnx"
        ) as pool:
            pending = {pool.submit(work, i) for i in range(self.workers)}
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        future.result()  # a worker's error is raised here
                    if progress is not None:
                        progress(sum(done), n)
            finally:
                stop.set()


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view; read-only arrays (Arrow buffers) are fine since inference only reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


@dataclass(frozen=True)
class Int8Model:
    """An int8-quantised ONNX graph that passed the fp32 agreement check.

    Attributes
    ----------
    onnx : bytes
        The quantised graph (QDQ format: int8 per-channel weights, uint8 activations); it takes
        stamps preprocessed by `preprocess_array`, as `export_onnx(preprocessed_input=True)`.
    max_deviation : float
        Largest |int8 - fp32| reliability over the check stamps.
    n_check : int
        Number of check stamps.
    tolerance : float
        The tolerance it was accepted under.
    fp32_sha256 : str
        sha256 of the fp32 graph it was quantised from (ties it to one package's weights and
        preprocessing).
    """

    onnx: bytes
    max_deviation: float
    n_check: int
    tolerance: float
    fp32_sha256: str


def _predict_onnx(model: bytes, data: np.ndarray, batch_size: int = 256) -> np.ndarray:
    out = np.empty(len(data), dtype=np.float32)
    _OnnxRunner(model, 1).run(data, out, batch_size, None)
    return out


def quantize_int8(
    package: ModelPackage,
    check_stamps: np.ndarray,
    *,
    tolerance: float = INT8_TOLERANCE,
) -> Int8Model:
    """Quantise the package's ONNX graph to int8 and accept it only if it agrees with fp32.

    Static quantisation (ONNX Runtime, QDQ, per-channel int8 weights, uint8 activations,
    min-max calibration on the first half of the check stamps, at most 1024). The scores of the
    int8 graph on *all* check stamps, so half of them unseen by the calibration, are compared
    with the fp32 graph's; the int8 graph is refused when any differs by more than `tolerance`.

    Parameters
    ----------
    package : ModelPackage
    check_stamps : ndarray of shape (N, 3, S, S), float32
        Representative stamps of the data to be scored (a dataset's stamps, a package's test
        stamps), N >= 2, in [difference, science, template] order.
    tolerance : float
        Largest accepted |int8 - fp32| reliability.

    Returns
    -------
    Int8Model

    Raises
    ------
    ConfigError
        When the onnx packages are missing, the check stamps are too few, or the int8 scores
        differ from fp32 by more than `tolerance` (the message gives the deviation).
    """
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        msg = f"tolerance must be a number in (0, 1); got {tolerance!r}"
        raise ConfigError(msg)
    if not _onnx_available():
        msg = "int8 scoring needs the onnx and onnxruntime packages"
        raise ConfigError(msg)
    check = _checked(
        check_stamps.data if isinstance(check_stamps, Stamps) else check_stamps, package
    )
    if len(check) < 2:
        msg = f"int8 needs at least 2 check stamps to calibrate and verify on; got {len(check)}"
        raise ConfigError(msg)
    import logging

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.quant_utils import add_pre_process_metadata

    fp32 = export_onnx(package, preprocessed_input=True)
    check = preprocess_array(package.card, check)
    calibration = check[: len(check) // 2][:_CALIBRATION_STAMPS]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(np.array_split(calibration, max(1, len(calibration) // 128)))

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {"stamps": np.ascontiguousarray(batch)}

    model = onnx.load_from_string(fp32)
    add_pre_process_metadata(model)  # our graph is already shape-complete and minimal
    quant_logger = logging.getLogger()
    level = quant_logger.level
    with tempfile.TemporaryDirectory(prefix="realbogus-int8-") as tmp:
        out = Path(tmp) / "int8.onnx"
        try:
            quant_logger.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
            quantize_static(
                model,
                out,
                _Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
            )
        finally:
            quant_logger.setLevel(level)
        int8 = out.read_bytes()
    deviation = float(np.max(np.abs(_predict_onnx(int8, check) - _predict_onnx(fp32, check))))
    if not deviation <= tolerance:
        msg = (
            f"int8 model of {package.version} refused: its scores differ from fp32 by up to "
            f"{deviation:.4f} on the {len(check)} check stamps, over the tolerance {tolerance:g}; "
            "score in fp32"
        )
        raise ConfigError(msg)
    return Int8Model(
        onnx=int8,
        max_deviation=deviation,
        n_check=len(check),
        tolerance=float(tolerance),
        fp32_sha256=hashlib.sha256(fp32).hexdigest(),
    )


def sample_check_stamps(dataset: Dataset, n: int = 2048) -> np.ndarray:
    """Up to `n` check stamps for `quantize_int8`: evenly spaced rows of a dataset's first parts.

    Returns
    -------
    ndarray of shape (min(n, len(dataset)), 3, S, S), float32
    """
    pieces, have = [], 0
    for _, stamps in dataset.iter_parts():
        step = max(1, len(stamps) // (n - have))
        pieces.append(stamps.data[::step][: n - have].copy())
        have += len(pieces[-1])
        if have >= n:
            break
    size = dataset.stamp_size
    return np.concatenate(pieces) if pieces else np.empty((0, 3, size, size), np.float32)


def _checked(stamps: np.ndarray, package: ModelPackage) -> np.ndarray:
    return check_stamps(stamps, size=package.card.stamp_size, name="check stamps")


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
    int8 : bool or Int8Model
        True: quantise the ONNX graph to int8 now (`quantize_int8`), which needs `check_stamps`
        and is refused (ConfigError) when its scores differ from fp32 by more than
        `int8_tolerance` on them. An `Int8Model` already accepted for this package is used as is.
    check_stamps : ndarray of shape (N, 3, S, S), float32, or Stamps, optional
        Representative stamps the int8 graph is calibrated and verified on.
    int8_tolerance : float
        Largest accepted |int8 - fp32| reliability on the check stamps.

    Attributes
    ----------
    backend : str
        'onnx' or 'torch', as resolved.
    precision : str
        'fp32' or 'int8'.
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
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            msg = f"batch_size must be a positive integer; got {batch_size!r}"
            raise ConfigError(msg)
        if backend not in BACKENDS:
            msg = f"backend must be one of {BACKENDS}; got {backend!r}"
            raise ConfigError(msg)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            msg = f"threads must be a positive integer; got {threads!r}"
            raise ConfigError(msg)
        self.package = package
        self.card = package.card
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and _onnx_available() else "torch"
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
            if not _onnx_available():
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
        default = "cuda" if self.device.type == "cuda" else backend
        self.batch_size = batch_size or _DEFAULT_BATCH[default]
        self._start()

    def _start(self) -> None:
        """Build the sessions (onnx) or place the model (torch); also run after unpickling."""
        if self.backend == "onnx":
            self._onnx = (
                self.int8_model.onnx
                if self.int8_model is not None
                else export_onnx(self.package, preprocessed_input=True)
            )
            self._runner = _OnnxRunner(
                self._onnx, self.threads, functools.partial(preprocess_array, self.card)
            )
        else:
            if self.device.type == "cpu":
                torch.set_num_threads(self.threads)
            self._model = self.package.model.to(self.device).eval()

    def __getstate__(self) -> dict:
        # Sessions and thread pools do not pickle; they are rebuilt on the other side (Dask).
        state = dict(self.__dict__)
        for key in ("_runner", "_model", "_onnx"):
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
        if self.backend == "onnx":
            digest.update(self._onnx)
        else:
            for name, value in sorted(self.package.model.state_dict().items()):
                digest.update(name.encode())
                digest.update(value.detach().cpu().numpy().tobytes())
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
        if self.backend == "onnx":
            self._runner.run(data, out, self.batch_size, progress)
            return self._corrected(out, data)
        tf32_off = (
            torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), tf32_off:
            for start in range(0, n, self.batch_size):
                batch = data[start : start + self.batch_size]
                _check_finite(batch, start)
                tensor = _as_tensor(np.ascontiguousarray(batch)).to(self.device, non_blocking=False)
                out[start : start + len(batch)] = (
                    self._model(preprocess(self.card, tensor)).float().cpu().numpy()
                )
                if progress is not None:
                    progress(start + len(batch), n)
        return self._corrected(out, data)

    def _corrected(self, reliability: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The card's observing-condition correction, if it has one (`realbogus.conditions`)."""
        if self.card.conditions is None:
            return reliability
        return self.card.conditions.apply(reliability, data)

    def score_stamps(
        self, stamps: Stamps, ids: np.ndarray, *, progress: Progress | None = None
    ) -> pd.DataFrame:
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
            tables.append(self.score_part(table, stamps, first_row=done))
            done += len(table)
            if progress is not None:
                progress(done, total)
        if not tables:
            return score_table(
                np.empty(0, np.int64),
                np.empty(0, np.float32),
                version=self.version,
                cutoff=self.card.cutoff,
                valid_fraction=np.empty(0),
                edge=np.empty(0, bool),
            )
        return pd.concat(tables, ignore_index=True)
