"""The DMTN-337 CNN: exact layer sizes and behaviour."""

import pytest
import torch

from realbogus.errors import ConfigError
from realbogus.model.network import DMTN337CNN, build_model, count_parameters


def test_parameter_count_at_51_px_is_the_notes():
    """73,569 parameters at 51x51: conv 16/32/64 5x5 valid, flatten 64x2x2 = 256, 32, 1."""
    model = DMTN337CNN(51)
    assert count_parameters(model) == 73_569
    assert model.fc1.in_features == 256


@pytest.mark.parametrize(("size", "flat"), [(63, 64 * 4 * 4), (36, 64 * 1 * 1), (30 + 21, 256)])
def test_other_sizes_derive_flatten_size(size, flat):
    """Other stamp sizes get the flatten size that the same layers produce."""
    model = DMTN337CNN(size)
    assert model.fc1.in_features == flat
    out = model.eval()(torch.zeros(2, 3, size, size))
    assert out.shape == (2,)


def test_too_small_stamp_is_an_error():
    """Below 36 px the third conv block has no output: refused with the size named."""
    with pytest.raises(ConfigError, match="got 35"):
        DMTN337CNN(35)


def test_forward_is_sigmoid_of_logits_and_eval_is_deterministic():
    """forward = sigmoid(logits) in [0, 1]; dropout is off in eval mode."""
    torch.manual_seed(0)
    model = DMTN337CNN().eval()
    x = torch.randn(5, 3, 51, 51)
    p = model(x)
    assert torch.all((p >= 0) & (p <= 1))
    torch.testing.assert_close(p, torch.sigmoid(model.logits(x)))
    torch.testing.assert_close(model(x), p)


def test_scores_do_not_depend_on_batch_composition():
    """A stamp scores the same alone and inside a batch (no cross-talk between stamps)."""
    torch.manual_seed(1)
    model = DMTN337CNN().eval()
    x = torch.randn(8, 3, 51, 51)
    together = model(x)
    alone = torch.cat([model(x[i : i + 1]) for i in range(8)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(model(x.flip(0)), together.flip(0), rtol=0, atol=1e-6)


def test_unknown_architecture_lists_registered():
    """An unknown id names the registered ones."""
    with pytest.raises(ConfigError, match="dmtn337-cnn"):
        build_model("resnet", 51)
