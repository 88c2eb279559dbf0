"""The Scorer: batching invariance, the score table, errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from realbogus.errors import ConfigError, StampShapeError
from realbogus.inference.scorer import SCORE_COLUMNS, Scorer, resolve_device
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.model.package import init_package, load_package, save_package
from realbogus.stamps import Stamps
from realbogus.workflows.score import score_dataset


@pytest.fixture
def package(tmp_path):
    return load_package(init_package(tmp_path / "pkg", seed=5))


def _stamps(rng, n, size=51):
    return Stamps(
        data=rng.normal(size=(n, 3, size, size)).astype(np.float32),
        valid_fraction=rng.uniform(0, 1, n).astype(np.float32),
        edge=rng.uniform(size=n) < 0.2,
    )


def test_scores_equal_plain_model_call_for_any_batch_size(package, rng):
    """Batching (1, 7, 1024) changes nothing: same as one eval-mode forward pass."""
    stamps = _stamps(rng, 50)
    with torch.no_grad():
        want = package.model.eval()(torch.from_numpy(stamps.data)).numpy()
    for batch in (1, 7, 1024):
        got = Scorer(package, batch_size=batch).predict(stamps.data)
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)


def test_score_table_columns_order_and_cutoff(package, rng):
    """Score table: the design's columns, input order kept, passes_cutoff = reliability >= cutoff."""
    stamps = _stamps(rng, 30)
    ids = rng.permutation(10_000)[:30].astype(np.int64)
    table = Scorer(package).score_stamps(stamps, ids)
    assert tuple(table.columns) == SCORE_COLUMNS
    np.testing.assert_array_equal(table["diaSourceId"], ids)
    assert table["reliability"].dtype == np.float32
    assert (table["reliabilityVersion"] == "untrained").all()
    np.testing.assert_array_equal(
        table["passes_cutoff"], table["reliability"] >= package.card.cutoff
    )
    np.testing.assert_array_equal(table["edge"], stamps.edge)
    reversed_table = Scorer(package).score_stamps(
        Stamps(stamps.data[::-1].copy(), stamps.valid_fraction[::-1], stamps.edge[::-1]), ids[::-1]
    )
    merged = table.merge(reversed_table, on="diaSourceId")
    np.testing.assert_allclose(merged["reliability_x"], merged["reliability_y"], atol=2e-7)


def test_empty_input_gives_empty_table(package):
    """No detections -> an empty table with the right columns, not an error."""
    table = Scorer(package).score_stamps(
        Stamps(np.zeros((0, 3, 51, 51), np.float32), np.zeros(0, np.float32), np.zeros(0, bool)),
        np.zeros(0, np.int64),
    )
    assert len(table) == 0 and tuple(table.columns) == SCORE_COLUMNS


def test_wrong_stamp_size_or_ids_are_errors(package, rng):
    """A 63-px stamp for a 51-px model, or ids of the wrong length, are refused."""
    with pytest.raises(StampShapeError, match="51"):
        Scorer(package).predict(rng.normal(size=(2, 3, 63, 63)).astype(np.float32))
    with pytest.raises(StampShapeError, match="ids must have shape"):
        Scorer(package).score_stamps(_stamps(rng, 3), np.arange(4))
    with pytest.raises(ConfigError, match="batch_size"):
        Scorer(package, batch_size=0)


def test_score_dataset_matches_score_stamps(package, rng, tmp_path):
    """Scoring a multi-part dataset = scoring its stamps in memory, in dataset order."""
    stamps = _stamps(rng, 25)
    table = pd.DataFrame({"diaSourceId": np.arange(100, 125), "snr": rng.uniform(5, 50, 25)})
    dataset = open_dataset(write_dataset(tmp_path / "ds", table, stamps, rows_per_part=10))
    assert len(dataset.parts) == 3
    got = score_dataset(Scorer(package), dataset)
    want = Scorer(package).score_stamps(stamps, table["diaSourceId"].to_numpy())
    pd.testing.assert_frame_equal(got, want)


def test_resolve_device():
    """'auto' falls back to CPU; a GPU asked for but absent is a clear error."""
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_onnx_and_torch_backends_agree(package, rng, tmp_path):
    """fp32 scores equal across backends within 1e-5; the exported graph loads in ONNX Runtime."""
    import onnxruntime as ort

    from realbogus.inference.onnx import export_onnx

    data = rng.normal(scale=50, size=(300, 3, 51, 51)).astype(np.float32)
    torch_scores = Scorer(package, backend="torch").predict(data)
    onnx_scorer = Scorer(package, backend="onnx", batch_size=128)
    assert onnx_scorer.backend == "onnx" and Scorer(package).backend == "onnx"
    np.testing.assert_allclose(onnx_scorer.predict(data), torch_scores, rtol=0, atol=1e-5)
    export_onnx(package, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"stamps": data[:10]})[0], torch_scores[:10], atol=1e-5
    )
    with pytest.raises(ConfigError, match="--backend .* must be one of"):
        Scorer(package, backend="tflite")


def test_asinh_noise_graph_equals_torch_and_ignores_units(package, rng, tmp_path):
    """'asinh-noise' in the ONNX graph = in torch, and scaling a stamp (other units, other
    depth) leaves its score unchanged; padded stamps take the noise of their valid pixels."""
    card = package.card.model_copy(
        update={"preprocessing": "asinh-noise", "preprocessing_scale": [1.0, 1.2, 0.25]}
    )
    noise = load_package(save_package(tmp_path / "noise", package.model, card))
    data = (rng.normal(size=(40, 3, 51, 51)) * 30).astype(np.float32)
    data[:10, :, :, :21] = 0
    torch_scores = Scorer(noise, backend="torch").predict(data)
    onnx = Scorer(noise, backend="onnx")
    np.testing.assert_allclose(onnx.predict(data), torch_scores, rtol=0, atol=1e-5)
    factors = np.geomspace(1e-3, 1e4, 40).astype(np.float32)[:, None, None, None]
    np.testing.assert_allclose(onnx.predict(data * factors), torch_scores, rtol=0, atol=1e-5)


def test_self_contained_asinh_noise_graph_computes_the_noise_itself(package, rng, tmp_path):
    """export_onnx's default graph (noise by TopK and Asinh inside) = the Scorer's (a graph fed
    by numpy's `preprocess_array`) = torch."""
    import onnxruntime as ort

    from realbogus.inference.onnx import export_onnx
    from realbogus.model.transforms import (
        preprocess,
        preprocess_array,
        stamp_noise,
        stamp_noise_array,
    )

    card = package.card.model_copy(
        update={"preprocessing": "asinh-noise", "preprocessing_scale": [1.0, 1.2, 0.25]}
    )
    noise = load_package(save_package(tmp_path / "noise", package.model, card))
    data = (rng.normal(size=(30, 3, 51, 51)) * 30).astype(np.float32)
    data[:8, :, :, :21] = 0
    data[9, 0] = 0
    np.testing.assert_array_equal(
        stamp_noise_array(data), stamp_noise(torch.from_numpy(data)).numpy()
    )
    session = ort.InferenceSession(export_onnx(noise), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["stamps"]
    np.testing.assert_allclose(
        session.run(None, {"stamps": data})[0],
        Scorer(noise, backend="torch").predict(data),
        rtol=0,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        preprocess_array(noise.card, data),
        preprocess(noise.card, torch.from_numpy(data)).numpy(),
        rtol=1e-6,
        atol=1e-6,
    )
    inner = ort.InferenceSession(
        export_onnx(noise, preprocessed_input=True), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(
        inner.run(None, {"stamps": preprocess_array(noise.card, data)})[0],
        session.run(None, {"stamps": data})[0],
        rtol=0,
        atol=1e-5,
    )
