"""Model packages: round trips, validation, Rubin interchange, and no code execution."""

import io
import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from realbogus.errors import PackageError
from realbogus.inference.scorer import Scorer
from realbogus.model.card import ModelCard
from realbogus.model.network import DMTN337CNN
from realbogus.model.package import init_package, load_package, save_package
from realbogus.model.rubin import export_rubin, import_rubin
from realbogus.model.transforms import stamp_noise
from realbogus.stamps import NOISE_FLOOR


@pytest.fixture
def package_dir(tmp_path):
    return init_package(tmp_path / "pkg", seed=3)


def _scores(package, rng):
    stamps = rng.normal(size=(64, 3, package.card.stamp_size, package.card.stamp_size)).astype(
        np.float32
    )
    return Scorer(package, batch_size=16).predict(stamps)


def test_save_load_round_trip_is_exact(package_dir, rng, tmp_path):
    """Weights and card survive save/load bit for bit; a .zip package loads the same."""
    package = load_package(package_dir)
    assert package.card.version == "untrained" and package.card.parent is None
    zipped = save_package(tmp_path / "pkg.zip", package.model, package.card)
    a, b = _scores(package, rng), _scores(load_package(zipped), np.random.default_rng(20261126))
    assert np.array_equal(a, b)


def test_rubin_export_import_round_trip_scores_identical(package_dir, tmp_path, rng):
    """Export to Rubin's layout and import back: max |diff| of scores = 0 (dir and payload zip)."""
    package = load_package(package_dir)
    rubin_dir = export_rubin(package, tmp_path / "rubin")
    assert {p.name for p in rubin_dir.iterdir()} == {
        "arch.py",
        "checkpoint.pt",
        "meta.yaml",
        "realbogus-card.json",
    }
    meta = yaml.safe_load((rubin_dir / "meta.yaml").read_text())
    assert meta["input_shape"] == [51, 51, 3] and meta["input_scale_factor"] == [1.0, 1.0, 1.0]
    checkpoint = torch.load(rubin_dir / "checkpoint.pt", weights_only=True)
    assert set(checkpoint) == {"model_state_dict"}
    stamps = rng.normal(size=(200, 3, 51, 51)).astype(np.float32)
    want = Scorer(package).predict(stamps)
    for source in (rubin_dir, export_rubin(package, tmp_path / "payload.zip")):
        back = load_package(import_rubin(source, tmp_path / f"back-{source.name}"))
        got = Scorer(back).predict(stamps)
        assert np.abs(got - want).max() == 0


def test_exported_arch_builds_the_same_network(package_dir, tmp_path, rng):
    """The arch.py we write for Rubin (which Rubin executes, not us) defines the same model."""
    rubin_dir = export_rubin(load_package(package_dir), tmp_path / "rubin")
    namespace = {}
    exec(compile((rubin_dir / "arch.py").read_text(), "arch.py", "exec"), namespace)  # our own file
    (name,) = namespace["__all__"]
    model = namespace[name]()
    model.load_state_dict(
        torch.load(rubin_dir / "checkpoint.pt", weights_only=True)["model_state_dict"]
    )
    x = torch.from_numpy(rng.normal(size=(4, 3, 51, 51)).astype(np.float32))
    torch.testing.assert_close(model.eval()(x), load_package(package_dir).model(x), rtol=0, atol=0)


def test_rubin_import_never_runs_arch_py_and_refuses_pickles(package_dir, tmp_path):
    """A malicious arch.py is ignored; a checkpoint that needs unpickling of code is refused."""
    rubin_dir = export_rubin(load_package(package_dir), tmp_path / "rubin")
    marker = tmp_path / "executed"
    (rubin_dir / "arch.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    import_rubin(rubin_dir, tmp_path / "ok")
    assert not marker.exists()

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    torch.save({"model_state_dict": {}, "x": Evil()}, buffer)
    (rubin_dir / "checkpoint.pt").write_bytes(buffer.getvalue())
    with pytest.raises(PackageError, match="weights-only"):
        import_rubin(rubin_dir, tmp_path / "bad")
    assert not marker.exists() and not (tmp_path / "bad").exists()


def test_rubin_import_rejects_wrong_meta_and_state(package_dir, tmp_path):
    """input_shape must be [S, S, 3]; the state dict must fit the DMTN-337 CNN."""
    rubin_dir = export_rubin(load_package(package_dir), tmp_path / "rubin")
    meta = yaml.safe_load((rubin_dir / "meta.yaml").read_text())
    (rubin_dir / "meta.yaml").write_text(yaml.safe_dump({**meta, "input_shape": [3, 51, 51]}))
    with pytest.raises(PackageError, match="input_shape"):
        import_rubin(rubin_dir, tmp_path / "a")
    (rubin_dir / "meta.yaml").write_text(yaml.safe_dump({**meta, "input_shape": [63, 63, 3]}))
    with pytest.raises(PackageError, match="does not fit"):
        import_rubin(rubin_dir, tmp_path / "b")


def test_weights_load_as_read_only_numpy_and_the_torch_module_is_built_from_them(package_dir):
    """The weights are float32 numpy arrays in the architecture's order; the torch module holds
    the same numbers, is built once, leaves torch's global generator alone and does not travel
    with a pickled package."""
    import pickle

    from realbogus.model.architectures import get_architecture

    package = load_package(package_dir)
    shapes = get_architecture("dmtn337-cnn").parameter_shapes(51)
    assert list(package.weights) == list(shapes)
    assert all(w.dtype == np.float32 and not w.flags.writeable for w in package.weights.values())
    assert {k: tuple(w.shape) for k, w in package.weights.items()} == shapes
    rng_state = torch.random.get_rng_state()
    model = package.model
    assert torch.equal(rng_state, torch.random.get_rng_state()) and package.model is model
    state = model.state_dict()
    assert list(state) == list(shapes)
    assert all(np.array_equal(state[k].numpy(), w) for k, w in package.weights.items())
    copy = pickle.loads(pickle.dumps(package))
    assert "model" not in copy.__dict__ and copy.card == package.card
    assert all(np.array_equal(copy.weights[k], w) for k, w in package.weights.items())


def test_weights_of_another_dtype_are_refused_before_reading(package_dir):
    """float64 weights of the right names and shapes: refused, naming the weight and dtype."""
    state = {k: v.double() for k, v in load_package(package_dir).model.state_dict().items()}
    save_file(state, str(package_dir / "weights.safetensors"))
    with pytest.raises(PackageError, match=r"weight 'conv1.weight' has dtype F64; packages store"):
        load_package(package_dir)


def test_card_and_weights_disagreeing_is_an_error_naming_the_file(package_dir):
    """A card saying 63 px over 51-px weights fails at load, naming the weight and shapes."""
    card = json.loads((package_dir / "card.json").read_text())
    (package_dir / "card.json").write_text(json.dumps({**card, "stamp_size": 63}))
    with pytest.raises(
        PackageError, match=r"weights.safetensors: weight 'fc1.weight' has shape \[32, 256\]"
    ):
        load_package(package_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": "resnet50"}, "unknown architecture"),
        ({"channels": ["science", "template", "difference"]}, "channels must be"),
        ({"preprocessing": "zscale"}, "unknown preprocessing"),
        ({"cutoff": 1.5}, "cutoff"),
        ({"format_version": 99}, "format_version"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_cards_are_refused(package_dir, change, message):
    """Every card field is validated, unknown keys included."""
    card = json.loads((package_dir / "card.json").read_text())
    (package_dir / "card.json").write_text(json.dumps({**card, **change}))
    with pytest.raises(PackageError, match=message):
        load_package(package_dir)


def test_corrupt_or_incomplete_packages(package_dir, tmp_path):
    """Truncated weights, missing files, non-JSON cards, extra tensors: clear errors."""
    weights = package_dir / "weights.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PackageError, match="corrupt weights"):
        load_package(package_dir)
    state = {k: v.contiguous() for k, v in DMTN337CNN().state_dict().items()}
    save_file({**state, "extra": torch.zeros(1)}, str(weights))
    with pytest.raises(PackageError, match="unexpected \\['extra'\\]"):
        load_package(package_dir)
    (package_dir / "card.json").write_text("{not json")
    with pytest.raises(PackageError, match="not valid JSON"):
        load_package(package_dir)
    with pytest.raises(PackageError, match="no such package"):
        load_package(tmp_path / "nowhere")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(PackageError, match="corrupt zip"):
        load_package(tmp_path / "junk.zip")


def test_save_refuses_to_overwrite_and_mismatched_models(package_dir, tmp_path):
    """Existing outputs are kept; a model that does not fit its card is never written."""
    package = load_package(package_dir)
    with pytest.raises(PackageError, match="already exists"):
        save_package(package_dir, package.model, package.card)
    card = ModelCard(name="x", version="x", architecture="dmtn337-cnn", stamp_size=63)
    with pytest.raises(PackageError, match="does not match"):
        save_package(tmp_path / "new", package.model, card)
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("preprocessing", ["asinh", "asinh-noise"])
def test_asinh_package_round_trips_through_rubin_layout(package_dir, tmp_path, rng, preprocessing):
    """An 'asinh'/'asinh-noise' package exports a network that applies its preprocessing itself
    (Rubin feeds raw pixels) and imports back to the same card preprocessing and identical scores."""
    package = load_package(package_dir)
    card = package.card.model_copy(
        update={"preprocessing": preprocessing, "preprocessing_scale": [20.0, 21.0, 5.0]}
    )
    asinh = load_package(save_package(tmp_path / "asinh", package.model, card))
    rubin_dir = export_rubin(asinh, tmp_path / "rubin")
    namespace = {}
    exec(
        compile((rubin_dir / "arch.py").read_text(), "arch.py", "exec"), namespace
    )  # our own file, as Rubin runs it
    rubin_model = namespace["DMTN337CNN"]()
    rubin_model.load_state_dict(
        torch.load(rubin_dir / "checkpoint.pt", weights_only=True)["model_state_dict"]
    )
    raw = (rng.normal(size=(50, 3, 51, 51)) * 300).astype(np.float32)
    raw[3, :, :, :30] = 0  # padded: the noise comes from the valid pixels only
    want = Scorer(asinh, backend="torch").predict(raw)
    np.testing.assert_allclose(
        rubin_model.eval()(torch.from_numpy(raw)).detach().numpy(), want, atol=1e-6
    )
    back = load_package(import_rubin(rubin_dir, tmp_path / "back"))
    assert back.card.preprocessing == preprocessing and back.card.preprocessing_scale == [
        20.0,
        21.0,
        5.0,
    ]
    assert np.abs(Scorer(back).predict(raw) - want).max() < 1e-6


def test_stamp_noise_is_the_mad_of_the_valid_difference_pixels(rng):
    """stamp_noise = 1.4826 median |d| over non-zero pixels of the (subsampled) difference."""
    x = torch.from_numpy((rng.normal(size=(3, 3, 51, 51)) * 7).astype(np.float32))
    x[1, 0, :, 20:] = 0
    x[2, 0] = 0
    noise = stamp_noise(x).numpy()
    for i in (0, 1):
        d = x[i, 0, ::2, ::2].abs().flatten().numpy()
        d = np.sort(d[d != 0])
        assert noise[i] == pytest.approx(1.4826 * d[len(d) // 2], rel=1e-6)
        assert noise[i] == pytest.approx(7, rel=0.1)
    assert noise[2] == NOISE_FLOOR
