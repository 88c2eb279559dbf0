"""Scoring backends: fp32 agreement, the cropped ONNX graph, parallel sessions, the int8 gate."""

import itertools
import pickle

import numpy as np
import pytest
import torch

from realbogus.errors import ConfigError, StampShapeError
from realbogus.inference.onnx import (
    INT8_TOLERANCE,
    Int8Model,
    _predict_onnx,
    export_onnx,
    quantize_int8,
)
from realbogus.inference.scorer import Scorer
from realbogus.model.package import init_package, load_package


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return load_package(init_package(tmp_path_factory.mktemp("pkg") / "pkg", seed=5))


def _torch_scores(package, data):
    with torch.no_grad():
        return package.model.eval()(torch.from_numpy(data)).numpy()


@pytest.mark.parametrize("size", [51, 63])
def test_onnx_graph_equals_the_model_for_any_stamp_size(tmp_path, rng, size):
    """The cropped graph (convs skip outputs the floor-mode pools drop) gives the model's scores."""
    package = load_package(init_package(tmp_path / "p", stamp_size=size, seed=1))
    data = rng.normal(scale=30, size=(40, 3, size, size)).astype(np.float32)
    got = Scorer(package, backend="onnx", threads=1).predict(data)
    np.testing.assert_allclose(got, _torch_scores(package, data), rtol=0, atol=1e-5)
    assert len(set(np.round(got, 4))) > 10  # a spread of scores, not a constant
    plain = _predict_onnx(export_onnx(package, crop=False), data)
    np.testing.assert_allclose(got, plain, rtol=0, atol=1e-6)
    assert export_onnx(package) != export_onnx(package, crop=False)


def test_parallel_sessions_equal_one_session_for_any_batch(package, rng):
    """Per-core sessions on a shared queue: same scores, in input order, for any batch size."""
    data = rng.normal(scale=20, size=(203, 3, 51, 51)).astype(np.float32)
    want = Scorer(package, backend="onnx", threads=1, batch_size=1000).predict(data)
    for threads, batch in ((2, 7), (3, 32), (2, 203), (4, 1)):
        got = Scorer(package, backend="onnx", threads=threads, batch_size=batch).predict(data)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(want, _torch_scores(package, data), rtol=0, atol=1e-5)


def test_backends_agree_within_1e5_on_non_contiguous_input(package, rng):
    """torch and ONNX Runtime give fp32 scores within 1e-5; a strided view is scored correctly."""
    big = rng.normal(scale=100, size=(120, 3, 51, 51)).astype(np.float32)
    view = big[::2]  # not C-contiguous
    onnx_scores = Scorer(package, backend="onnx", threads=2).predict(view)
    torch_scores = Scorer(package, backend="torch", device="cpu").predict(view)
    assert np.abs(onnx_scores - torch_scores).max() <= 1e-5
    np.testing.assert_allclose(
        torch_scores, _torch_scores(package, np.ascontiguousarray(view)), atol=1e-6
    )


def test_progress_is_reported_to_the_end(package, rng):
    """The progress callback ends at (N, N) for one and for several sessions."""
    data = rng.normal(size=(100, 3, 51, 51)).astype(np.float32)
    for threads in (1, 2):
        calls = []
        Scorer(package, threads=threads, batch_size=16).predict(
            data, progress=lambda d, t, calls=calls: calls.append((d, t))
        )
        assert calls[-1] == (100, 100)
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


def test_non_finite_pixels_are_found_in_any_worker(package, rng):
    """A NaN in a late batch on a worker thread raises StampShapeError naming the stamp."""
    data = rng.normal(size=(90, 3, 51, 51)).astype(np.float32)
    data[77, 2, 3, 4] = np.inf
    for threads in (1, 2):
        with pytest.raises(StampShapeError, match="first in stamp 77"):
            Scorer(package, threads=threads, batch_size=8).predict(data)


def test_scorer_pickles_and_gives_the_same_scores(package, rng):
    """A Scorer survives pickling (Dask, multiprocessing): sessions are rebuilt, scores equal."""
    data = rng.normal(size=(20, 3, 51, 51)).astype(np.float32)
    for backend in ("onnx", "torch"):
        scorer = Scorer(package, backend=backend, threads=1)
        clone = pickle.loads(pickle.dumps(scorer))
        np.testing.assert_array_equal(clone.predict(data), scorer.predict(data))
        assert clone.fingerprint == scorer.fingerprint


def test_fingerprint_tells_models_and_backends_apart(package, tmp_path):
    """The resume fingerprint changes with the weights and with the backend, not between builds."""
    other = load_package(init_package(tmp_path / "other", seed=6))
    onnx = Scorer(package, backend="onnx", threads=1)
    assert onnx.fingerprint == Scorer(package, backend="onnx", threads=2).fingerprint
    assert onnx.fingerprint != Scorer(other, backend="onnx", threads=1).fingerprint
    assert onnx.fingerprint != Scorer(package, backend="torch", device="cpu").fingerprint


@pytest.fixture(scope="module")
def int8_package(tmp_path_factory):
    """An untrained package whose int8 graph stays ~0.006 from fp32 on the test's noise stamps.

    (Random networks on random stamps land between 0.006 and 0.06; seed 12 is one of the close.)
    """
    return load_package(init_package(tmp_path_factory.mktemp("pkg") / "pkg", seed=12))


def test_int8_accepted_within_tolerance_and_used(int8_package, rng):
    """int8 within 0.01 of fp32 is accepted; the Scorer then scores with it, as measured."""
    package = int8_package
    check = rng.normal(scale=20, size=(256, 3, 51, 51)).astype(np.float32)
    scorer = Scorer(package, int8=True, check_stamps=check, threads=1)
    assert scorer.precision == "int8" and scorer.int8_model.n_check == 256
    fp32 = Scorer(package, threads=1).predict(check)
    got = scorer.predict(check)
    deviation = np.abs(got - fp32).max()
    assert 0 < deviation <= INT8_TOLERANCE  # really quantised, and within the gate
    assert deviation == pytest.approx(scorer.int8_model.max_deviation, abs=1e-7)
    # A verified Int8Model is reused as is (no second quantisation) ...
    again = Scorer(package, int8=scorer.int8_model, threads=2)
    np.testing.assert_array_equal(again.predict(check), got)
    assert again.fingerprint == scorer.fingerprint != Scorer(package, threads=1).fingerprint


def test_int8_refused_when_over_tolerance(int8_package, rng, tmp_path):
    """The same model on stamps with a few very bright peaks (a stretched int8 range): refused."""
    package = int8_package
    check = rng.normal(scale=20, size=(256, 3, 51, 51)).astype(np.float32)
    check[::16, :, 25, 25] = 3e4
    with pytest.raises(
        ConfigError,
        match=r"int8 model of untrained refused: .* differ from fp32 by up to 0\.\d+ on the 256 check stamps",
    ):
        Scorer(package, int8=True, check_stamps=check)
    model = quantize_int8(package, check, tolerance=0.9)  # the same graph, under a looser gate
    assert INT8_TOLERANCE < model.max_deviation <= 0.9
    other = load_package(init_package(tmp_path / "other", seed=9))
    with pytest.raises(ConfigError, match="quantised from other weights"):
        Scorer(other, int8=model)


def test_int8_option_errors(package, rng):
    """int8 needs check stamps and the onnx backend; bad options are refused up front."""
    with pytest.raises(ConfigError, match="needs check_stamps"):
        Scorer(package, int8=True)
    with pytest.raises(ConfigError, match="onnx backend"):
        Scorer(
            package, backend="torch", int8=True, check_stamps=np.zeros((4, 3, 51, 51), np.float32)
        )
    with pytest.raises(ConfigError, match="at least 2 check stamps"):
        quantize_int8(package, np.zeros((1, 3, 51, 51), np.float32))
    with pytest.raises(StampShapeError, match="check stamps"):
        quantize_int8(package, np.zeros((4, 3, 40, 40), np.float32))
    with pytest.raises(ConfigError, match="threads"):
        Scorer(package, threads=0)
    assert isinstance(export_onnx(package), bytes) and not isinstance(
        export_onnx(package), Int8Model
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_scores_equal_cpu_within_1e5(package, rng):
    """On a GPU (torch, TF32 off) the fp32 scores equal the CPU ones within 1e-5."""
    data = rng.normal(scale=50, size=(5000, 3, 51, 51)).astype(np.float32)
    gpu = Scorer(package)
    assert gpu.backend == "torch" and gpu.device.type == "cuda" and gpu.batch_size == 4096
    np.testing.assert_allclose(
        gpu.predict(data),
        Scorer(package, backend="onnx", device="cpu").predict(data),
        rtol=0,
        atol=1e-5,
    )
