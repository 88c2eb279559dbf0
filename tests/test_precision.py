"""Reduced precisions: the gate (deviation and passes_cutoff flips), bf16 and int8 through the
Scorer, the fall-back to fp32, the precision column, and pickling (the alert workers, Dask)."""

import pickle

import numpy as np
import pytest
import torch

from realbogus.errors import ConfigError
from realbogus.inference.bf16 import Bf16Network, _max_pool
from realbogus.inference.onnx import GRAPH_CACHE_ENV, cached_graph, export_onnx, quantize_int8
from realbogus.inference.precision import MAX_DEVIATION, check_precision
from realbogus.inference.scorer import Scorer
from realbogus.model.package import init_package, load_package
from realbogus.model.transforms import preprocess_array
from realbogus.stamps import Stamps


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return load_package(init_package(tmp_path_factory.mktemp("pkg") / "pkg", seed=12))


def test_gate_counts_deviation_and_flips():
    """Accepted only within the deviation limit and with < 0.1 % of passes_cutoff changed."""
    fp32 = np.r_[np.linspace(0, 0.4, 1000), np.linspace(0.6, 1, 1000)]  # none near 0.5
    ok = check_precision("bf16", fp32, fp32 + 0.004, cutoff=0.5)
    assert ok.accepted and ok.max_deviation == pytest.approx(0.004) and ok.flip_rate == 0.0
    # 0.004 shifts every score in [0.496, 0.5) over the cutoff: 8 of 2000 = 0.4 % flips.
    near = np.r_[fp32, np.full(8, 0.498)]
    flips = check_precision("bf16", near, near + np.r_[np.zeros(2000), np.full(8, 0.004)], 0.5)
    assert not flips.accepted and flips.flip_rate == pytest.approx(8 / 2008)
    assert "passes_cutoff changed for 0.40 %" in flips.reason and "refused" in flips.reason
    far = check_precision("int8", fp32, fp32 + 0.02, cutoff=2.0)  # no flips possible
    assert not far.accepted and far.flip_rate == 0 and far.max_deviation > MAX_DEVIATION
    with pytest.raises(ConfigError, match="equal non-empty"):
        check_precision("bf16", fp32, fp32[:5], 0.5)


@pytest.mark.parametrize("size", [51, 63])
def test_bf16_network_is_close_to_fp32_and_reads_the_cropped_pixels(tmp_path, rng, size):
    """bf16 convolutions stay within ~1e-2 of fp32; pixels the pools drop change nothing."""
    package = load_package(init_package(tmp_path / "p", stamp_size=size, seed=1))
    data = preprocess_array(
        package.card, rng.normal(scale=20, size=(64, 3, size, size)).astype(np.float32)
    )
    network = Bf16Network(package.model)
    got = network.predict(data)
    with torch.no_grad():
        want = package.model.eval()(torch.from_numpy(data)).numpy()
    assert got.dtype == np.float32 and got.shape == (64,)
    assert 0 < np.abs(got - want).max() < 0.02  # really bf16, and close
    edited = data.copy()
    edited[:, :, -1, :] = 1e3  # the last row: dropped by the floor-mode pools at 51 and 63
    np.testing.assert_array_equal(network.predict(edited), got)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("shape", [(5, 16, 46, 46), (3, 32, 19, 19), (2, 4, 7, 9)])
def test_bf16_max_pool_equals_torch_max_pool(size, shape):
    """Rows-then-columns maxima of strided views: max_pool2d's numbers, floor mode, any shape."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(_max_pool(x, size), torch.nn.functional.max_pool2d(x, size))


def test_int8_graph_keeps_the_first_conv_block_fp32(package, rng):
    """quantize_int8: the first convolution reads fp32 weights and the fp32 stamps; the later
    ones read dequantised int8 weights (quantised, per channel)."""
    import onnx

    check = rng.normal(scale=20, size=(64, 3, 51, 51)).astype(np.float32)
    graph = onnx.load_from_string(quantize_int8(package, check, tolerance=0.999).onnx).graph
    producer = {out: node for node in graph.node for out in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == 3
    first_in, first_w = (producer.get(name) for name in convs[0].input[:2])
    assert first_w is None  # an initializer: fp32 weights
    assert first_in.op_type == "Slice" and first_in.input[0] == "stamps"  # fp32 stamps, cropped
    weights = {i.name: i for i in graph.initializer}
    for conv in convs[1:]:
        data, weight = (producer[name] for name in conv.input[:2])
        assert data.op_type == weight.op_type == "DequantizeLinear"
        quantised, scale = (weights[name] for name in weight.input[:2])
        assert quantised.data_type == onnx.TensorProto.INT8
        assert list(scale.dims) == [quantised.dims[0]]  # one scale per output channel


def test_scorer_bf16_accepted_scores_and_pickles(package, rng):
    """precision='bf16' on stamps it agrees on: used, recorded in the table, survives pickling."""
    check = rng.normal(scale=20, size=(400, 3, 51, 51)).astype(np.float32)
    scorer = Scorer(package, precision="bf16", check_stamps=check, threads=2)
    assert scorer.precision == scorer.requested_precision == "bf16"
    assert scorer.precision_check.accepted and scorer.precision_check.n_check == 400
    fp32 = Scorer(package, threads=1).predict(check)
    got = scorer.predict(check)
    deviation = np.abs(got - fp32).max()
    assert 0 < deviation == pytest.approx(scorer.precision_check.max_deviation, abs=1e-7)
    stamps = Stamps(check[:10], np.ones(10, np.float32), np.zeros(10, bool))
    table = scorer.score_stamps(stamps, np.arange(10))
    assert (
        set(table["precision"]) == {"bf16"} and table["reliabilityVersion"].iloc[0] == "untrained"
    )
    clone = pickle.loads(pickle.dumps(scorer))
    np.testing.assert_array_equal(clone.predict(check), got)
    assert clone.fingerprint == scorer.fingerprint != Scorer(package, threads=1).fingerprint


def test_scorer_falls_back_to_fp32_with_the_reason(package, rng):
    """int8 on stamps with a few very bright peaks is refused: fp32 scores, bit for bit."""
    check = rng.normal(scale=20, size=(256, 3, 51, 51)).astype(np.float32)
    check[::16, :, 25, 25] = 3e4
    scorer = Scorer(package, precision="int8", check_stamps=check, threads=1)
    assert scorer.precision == "fp32" and scorer.requested_precision == "int8"
    assert not scorer.precision_check.accepted and scorer.int8_model is None
    assert scorer.precision_check.reason.startswith(
        "int8 refused, scoring in fp32: max |int8 - fp32|"
    )
    np.testing.assert_array_equal(scorer.predict(check), Scorer(package, threads=1).predict(check))
    assert scorer.fingerprint == Scorer(package, threads=1).fingerprint


def test_precision_option_errors(package):
    stamps = np.zeros((4, 3, 51, 51), np.float32)
    with pytest.raises(ConfigError, match="precision must be one of"):
        Scorer(package, precision="fp16")
    with pytest.raises(ConfigError, match="needs check_stamps"):
        Scorer(package, precision="bf16")
    with pytest.raises(ConfigError, match="not both"):
        Scorer(package, precision="bf16", int8=True, check_stamps=stamps)
    with pytest.raises(ConfigError, match="onnx backend"):
        Scorer(package, precision="int8", backend="torch", device="cpu", check_stamps=stamps)
    with pytest.raises(ConfigError, match="at least 2 check stamps"):
        Scorer(package, precision="bf16", check_stamps=stamps[:1])


def test_cached_graph_is_the_exported_graph(tmp_path, monkeypatch, rng):
    """The on-disk graph cache returns export_onnx's bytes; other weights get another entry."""
    monkeypatch.setenv(GRAPH_CACHE_ENV, str(tmp_path / "cache"))
    package = load_package(init_package(tmp_path / "a", seed=3))
    first = cached_graph(package, preprocessed_input=True)
    assert first == export_onnx(package, preprocessed_input=True)
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(b"marker")  # the second call reads the file, not the exporter
    assert cached_graph(package, preprocessed_input=True) == b"marker"
    entry.write_bytes(first)
    other = load_package(init_package(tmp_path / "b", seed=4))
    assert cached_graph(other, preprocessed_input=True) == export_onnx(
        other, preprocessed_input=True
    )
    assert len(list((tmp_path / "cache").iterdir())) == 2
    monkeypatch.setenv(GRAPH_CACHE_ENV, "off")
    assert cached_graph(package, preprocessed_input=True) == first
    assert len(list((tmp_path / "cache").iterdir())) == 2
