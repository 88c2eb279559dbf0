"""ONNX Runtime on the CPU: the graph of a package, per-core sessions, and int8 quantisation.

`export_onnx` builds the graph from the package's weights, its architecture's layers
(`architectures.onnx_nodes`) and, unless the caller preprocesses, its transform
(`Transform.onnx_nodes`). The Scorer runs one single-threaded session per core, each pulling
batches from one shared queue (ONNX Runtime releases the GIL): on a shared 2-core machine this
beats one session with two intra-op threads, whose threads spin and wait on each other
(docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, StampShapeError
from ..io.atomic import write_bytes
from ..model.architectures import get_architecture, onnx_nodes
from ..model.package import ModelPackage
from ..model.transforms import get_transform, preprocess_array
from ..stamps import Stamps, check_stamps

__all__ = [
    "GRAPH_CACHE_ENV",
    "INT8_TOLERANCE",
    "Int8Model",
    "OnnxRunner",
    "cached_graph",
    "check_finite",
    "export_onnx",
    "onnx_available",
    "quantize_int8",
]

#: Largest accepted |int8 score - fp32 score| on the check stamps.
INT8_TOLERANCE = 0.01
_CALIBRATION_STAMPS = 1024
Progress = Callable[[int, int], None]
Prepare = Callable[[np.ndarray], np.ndarray]


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
    cropped to the rows and columns its max-pool reads (`architectures.onnx_nodes`): the same
    numbers for ~12 % fewer multiply-adds; ``crop=False`` gives the plain layer-for-layer graph.
    The graph is written atomically to `path` if given. It applies the card's preprocessing
    itself (`Transform.onnx_nodes`; 'asinh-noise': the noise by TopK); with `preprocessed_input` it starts at the first
    convolution and takes ``stamps`` already preprocessed by `preprocess_array`, which is what
    the Scorer does: numpy's selection and SIMD arcsinh cost ~10 us per 63-px stamp where ONNX
    Runtime's TopK and scalar Asinh cost ~300 us, as much as the convolutions.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    card = package.card
    state = dict(package.weights)
    size, channels = card.stamp_size, len(card.channels)
    constants: dict = {"axis0": [0]}
    nodes, current = [], "stamps"
    transform = get_transform(card.preprocessing)
    if not preprocessed_input:  # the card's preprocessing, inside the graph
        if transform.scaled:
            scale = np.asarray(card.preprocessing_scale, dtype=np.float32).reshape(1, -1, 1, 1)
            state["preprocessing_scale"] = scale
        nodes, current = transform.onnx_nodes(helper, current, size, constants)
    network, logit = onnx_nodes(
        get_architecture(card.architecture), helper, current, size, channels, constants, crop=crop
    )
    nodes += network + [
        helper.make_node("Sigmoid", [logit], ["prob"]),
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
        write_bytes(path, data)
    return data


#: Environment variable: the folder of cached fp32 graphs ('' or 'off': no cache).
GRAPH_CACHE_ENV = "REALBOGUS_GRAPH_CACHE"
#: Source files whose text decides the graph `export_onnx` builds (part of the cache key).
_EXPORTER_SOURCES = ("inference/onnx.py", "model/architectures.py", "model/transforms.py")


def _graph_cache_folder() -> Path | None:
    folder = os.environ.get(GRAPH_CACHE_ENV)
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "realbogus", "onnx")
    return None if folder in ("", "off") else Path(folder)


def _graph_key(package: ModelPackage, crop: bool, preprocessed_input: bool) -> str:
    """sha256 of everything `export_onnx`'s bytes depend on: the exporter's source text, the
    onnx package's version, the card, the weights and the options."""
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"{version('onnx')}|{crop}|{preprocessed_input}|".encode())
    for name in _EXPORTER_SOURCES:
        digest.update((root / name).read_bytes())
    digest.update(package.card.model_dump_json().encode())
    for name, value in sorted(package.weights.items()):
        digest.update(name.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def cached_graph(
    package: ModelPackage, *, crop: bool = True, preprocessed_input: bool = False
) -> bytes:
    """`export_onnx(package, ...)`'s bytes, from an on-disk cache when an earlier process made them.

    Importing onnx and building the graph cost ~0.5-1 s of every `realbogus score` process;
    the cached file is the same bytes, keyed by the sha256 of the exporter's source, the onnx
    version, the card and the weights (`~/.cache/realbogus/onnx`, or $REALBOGUS_GRAPH_CACHE;
    'off' disables it). A cache that cannot be read or written is skipped silently.
    """
    folder = _graph_cache_folder()
    if folder is None:
        return export_onnx(package, crop=crop, preprocessed_input=preprocessed_input)
    path = folder / f"{_graph_key(package, crop, preprocessed_input)}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = export_onnx(package, crop=crop, preprocessed_input=preprocessed_input)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
    except OSError:
        pass
    return data


def onnx_available() -> bool:
    """Whether onnx and onnxruntime are installed (found, not imported: importing onnx costs
    ~1 s of a `realbogus score` process)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


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
    # Without QDQ propagation an int8 graph's first QuantizeLinear stays after the fp32 first
    # block's max-pool instead of moving before it (a uint8 NCHW max-pool at ~10x the fp32 one's
    # cost); a graph without Q/DQ nodes (fp32) is not touched by that optimiser.
    return ort.InferenceSession(
        model,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["QDQPropagationTransformer"],
    )


def check_finite(batch: np.ndarray, start: int) -> None:
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
    check_finite(batch, start)
    out[start : start + len(batch)] = session.run(
        None, {"stamps": batch if prepare is None else prepare(batch)}
    )[0]
    return len(batch)


class OnnxRunner:
    """`workers` single-threaded ONNX Runtime sessions pulling batches from one queue.

    `model` is an ONNX graph, or None with `sessions` given (one per worker).

    With one worker (or one batch) the batches run in the calling thread. ONNX Runtime and
    numpy's loops release the GIL, so worker threads run on separate cores. `prepare` turns each
    batch of stamps into the graph's input (`preprocess_array`), while the batch is in cache.
    """

    def __init__(
        self,
        model: bytes | None,
        workers: int,
        prepare: Prepare | None = None,
        *,
        sessions: list | None = None,
    ) -> None:
        self.workers = workers
        self.prepare = prepare
        # `sessions`: objects with ONNX Runtime's `run(outputs, feeds)` (`bf16.Bf16Session`).
        self.sessions = sessions or [_session(model, 1) for _ in range(workers)]

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


@dataclass(frozen=True)
class Int8Model:
    """An int8-quantised ONNX graph that passed the fp32 agreement check.

    Attributes
    ----------
    onnx : bytes
        The quantised graph (QDQ format: int8 per-channel weights, uint8 activations, the first
        conv block and the dense tail fp32); it takes
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
    OnnxRunner(model, 1).run(data, out, batch_size, None)
    return out


def quantize_int8(
    package: ModelPackage,
    check_stamps: np.ndarray,
    *,
    tolerance: float = INT8_TOLERANCE,
) -> Int8Model:
    """Quantise the package's ONNX graph to int8 and accept it only if it agrees with fp32.

    Static quantisation (ONNX Runtime, QDQ, per-channel int8 weights, uint8 activations,
    min-max calibration on the card's preprocessing ('asinh-noise') of the first half of the
    check stamps, at most 1024; the first conv block, the dense tail and the sigmoid stay fp32). The scores of the
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
    if not onnx_available():
        msg = "int8 scoring needs the onnx and onnxruntime packages"
        raise ConfigError(msg)
    check = _checked(
        check_stamps.data if isinstance(check_stamps, Stamps) else check_stamps, package
    )
    if len(check) < 2:
        msg = f"int8 needs at least 2 check stamps to calibrate and verify on; got {len(check)}"
        raise ConfigError(msg)
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
    for i, node in enumerate(model.graph.node):  # names, so that nodes can be excluded
        node.name = node.name or f"{node.op_type}_{i}"
    # The first conv block (its crop, conv, ReLU and max-pool) stays fp32: quantising its input,
    # the asinh stamps, costs most of the deviation (Rubin's dev alerts: 2.38 % passes_cutoff
    # flips with it, none without), and ONNX Runtime's int8 kernel is slower than the fp32 one
    # on 3 input channels (docs/speed.md). The dense tail (Gemm, the sigmoid) stays
    # fp32 too: a quantised sigmoid output alone is off by up to 1/510, and the tail costs < 1 %
    # of the multiply-adds.
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    first = convs[1] if len(convs) > 1 else len(nodes)
    while first > 0 and nodes[first - 1].op_type == "Slice":  # the next block's crop
        first -= 1
    tail = [n.name for n in nodes[:first]] + [
        n.name for n in nodes if n.op_type in ("Gemm", "Sigmoid", "Flatten", "Squeeze")
    ]
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
                nodes_to_exclude=tail,
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


def _checked(stamps: np.ndarray, package: ModelPackage) -> np.ndarray:
    return check_stamps(stamps, size=package.card.stamp_size, name="check stamps")
