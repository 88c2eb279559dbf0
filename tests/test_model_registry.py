"""The architecture and transform registries: a new one works everywhere with no edit elsewhere.

These tests are the recipes of docs/design.md ("Adding an architecture", "Adding a transform"):
each registers a toy definition here, in the test, and runs it through training, packaging,
ONNX and torch scoring, Rubin export (executing the exported `arch.py`, as Rubin would) and
import.
"""

import numpy as np
import pytest
import torch
from test_train import SIZE, toy_dataset

from realbogus.errors import ConfigError
from realbogus.inference.scorer import Scorer
from realbogus.model import architectures, transforms
from realbogus.model.architectures import (
    Architecture,
    Conv,
    Flatten,
    Linear,
    MaxPool,
    ReLU,
    register,
)
from realbogus.model.network import build_model
from realbogus.model.package import init_package, load_package, save_package
from realbogus.model.rubin import export_rubin, import_rubin
from realbogus.model.transforms import Transform, register_transform
from realbogus.training.train import TrainConfig, train

TOY = Architecture(
    "toy-cnn",
    (
        Conv("conv1", 4, 3),
        ReLU(),
        MaxPool(2),
        Conv("conv2", 4, 3),
        ReLU(),
        Flatten(),
        Linear("head", 1),
    ),
    class_name="ToyCNN",
    description="two 3x3 convolutions and a linear head (test only)",
)


@pytest.fixture
def toy_architecture():
    register(TOY)
    yield TOY
    architectures.ARCHITECTURES.pop(TOY.id)


class SignedSqrt(Transform):
    """A toy transform: sign(x) sqrt(|x| / s_c)."""

    id = "signed-sqrt"
    rubin_buffer = "sqrt_scale"

    def torch(self, x, scale):
        return torch.sign(x) * torch.sqrt(torch.abs(x) / scale)

    def numpy(self, x, scale):
        return (np.sign(x) * np.sqrt(np.abs(x) / scale)).astype(np.float32)

    def onnx_nodes(self, helper, source, stamp_size, constants):
        node = helper.make_node
        return [
            node("Sign", [source], ["sq_sign"]),
            node("Abs", [source], ["sq_abs"]),
            node("Div", ["sq_abs", "preprocessing_scale"], ["sq_scaled"]),
            node("Sqrt", ["sq_scaled"], ["sq_root"]),
            node("Mul", ["sq_sign", "sq_root"], ["sq_out"]),
        ], "sq_out"

    def rubin_forward(self):
        return [f"x = torch.sign(x) * torch.sqrt(torch.abs(x) / self.{self.rubin_buffer})"]


@pytest.fixture
def toy_transform():
    transform = register_transform(SignedSqrt())
    yield transform
    transforms.TRANSFORMS.pop(transform.id)


def _rubin_scores(rubin_dir, class_name, stamps):
    namespace = {}
    exec(compile((rubin_dir / "arch.py").read_text(), "arch.py", "exec"), namespace)  # our own file
    model = namespace[class_name]()
    model.load_state_dict(
        torch.load(rubin_dir / "checkpoint.pt", weights_only=True)["model_state_dict"]
    )
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(stamps)).numpy()


def test_a_registered_architecture_trains_scores_exports_and_imports(
    toy_architecture, tmp_path, rng
):
    """train -> package -> ONNX and torch scoring -> Rubin export (run) -> import, for a toy network."""
    data = toy_dataset(tmp_path / "data", n=300)
    # a given cutoff: two epochs of a toy network do not separate the classes (that is warned)
    path = train(
        data, tmp_path / "toy", config=TrainConfig(epochs=2, architecture="toy-cnn"), cutoff=0.5
    )
    package = load_package(path)
    assert package.card.architecture == "toy-cnn" and package.card.preprocessing == "asinh-noise"
    assert sorted(package.model.state_dict()) == [
        "conv1.bias",
        "conv1.weight",
        "conv2.bias",
        "conv2.weight",
        "head.bias",
        "head.weight",
    ]
    stamps = (rng.normal(size=(40, 3, SIZE, SIZE)) * 5).astype(np.float32)
    onnx = Scorer(package, backend="onnx").predict(stamps)
    np.testing.assert_allclose(onnx, Scorer(package, backend="torch").predict(stamps), atol=1e-5)
    assert np.ptp(onnx) > 0
    rubin = export_rubin(package, tmp_path / "rubin")
    np.testing.assert_allclose(_rubin_scores(rubin, "ToyCNN", stamps), onnx, atol=1e-5)
    back = load_package(import_rubin(rubin, tmp_path / "back", version="toy-back"))
    assert back.card.architecture == "toy-cnn" and back.card.preprocessing == "asinh-noise"
    np.testing.assert_array_equal(Scorer(back, backend="onnx").predict(stamps), onnx)


def test_a_registered_transform_scores_and_round_trips_through_rubin(toy_transform, tmp_path, rng):
    """A toy transform: torch and ONNX agree, the Rubin network applies it, import recovers it."""
    package = load_package(init_package(tmp_path / "p", stamp_size=SIZE))
    card = package.card.model_copy(
        update={"preprocessing": "signed-sqrt", "preprocessing_scale": [2.0, 3.0, 4.0]}
    )
    toy = load_package(save_package(tmp_path / "toy", package.model, card))
    stamps = (rng.normal(size=(30, 3, SIZE, SIZE)) * 50).astype(np.float32)
    onnx = Scorer(toy, backend="onnx").predict(stamps)
    np.testing.assert_allclose(onnx, Scorer(toy, backend="torch").predict(stamps), atol=1e-5)
    assert not np.allclose(onnx, Scorer(package, backend="onnx").predict(stamps), atol=1e-3)
    rubin = export_rubin(toy, tmp_path / "rubin")
    np.testing.assert_allclose(_rubin_scores(rubin, "DMTN337CNN", stamps), onnx, atol=1e-5)
    back = load_package(import_rubin(rubin, tmp_path / "back"))
    assert back.card.preprocessing == "signed-sqrt"
    assert back.card.preprocessing_scale == [2.0, 3.0, 4.0]


def test_unknown_ids_list_the_registered_ones():
    """Cards, builders and training refuse an unknown architecture or transform by name."""
    with pytest.raises(ConfigError, match="registered: \\['dmtn337-cnn'\\]"):
        build_model("resnet", 51)
    with pytest.raises(ConfigError, match="dmtn337-cnn"):
        TrainConfig(architecture="resnet")
    with pytest.raises(ConfigError, match="asinh-noise"):
        transforms.get_transform("log")


def test_a_network_must_end_in_one_logit():
    """Registering a network without a one-output Linear at the end is refused."""
    with pytest.raises(ConfigError, match="last layer"):
        register(Architecture("bad", (Conv("c", 2, 3), Flatten(), Linear("l", 2)), "Bad"))


def test_multiply_adds_counts_the_cropped_convolutions():
    """DMTN-337 at 51 px: conv outputs 46x46x16 (of 47), 18x18x32 (of 19), 4x4x64 (of 5)."""
    dmtn = architectures.get_architecture("dmtn337-cnn")
    dense = 256 * 32 + 32
    cropped = 46 * 46 * 16 * 3 * 25 + 18 * 18 * 32 * 16 * 25 + 4 * 4 * 64 * 32 * 25 + dense
    plain = 47 * 47 * 16 * 3 * 25 + 19 * 19 * 32 * 16 * 25 + 5 * 5 * 64 * 32 * 25 + dense
    assert architectures.multiply_adds(dmtn, 51) == cropped == 7_513_824
    assert architectures.multiply_adds(dmtn, 51, crop=False) == plain
    # 63 px: 58x58 (of 59), 24x24 (of 25), 8x8 (of 8); flatten 64x4x4 = 1024 -> 32 -> 1
    assert architectures.multiply_adds(dmtn, 63) == (
        58 * 58 * 16 * 75 + 24 * 24 * 32 * 400 + 8 * 8 * 64 * 800 + 1024 * 32 + 32
    )
