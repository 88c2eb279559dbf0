"""The torch form of the registered architectures (`realbogus.model.architectures`).

Kept apart so that loading a package and scoring it with ONNX Runtime never import torch
(`ModelPackage.model` builds the network on first use); training, the torch backend, bf16 and
the Rubin export build their networks here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .architectures import (
    DMTN337_LAYERS,
    Architecture,
    Conv,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool,
    ReLU,
    get_architecture,
    output_shape,
)

__all__ = [
    "DMTN337CNN",
    "Network",
    "build_model",
    "build_network",
    "count_parameters",
    "network_from_weights",
    "torch_module",
]


class Network(nn.Module):
    """A torch module running an architecture's layers in order; one logit per stamp.

    Parameters
    ----------
    layers : tuple of layers
        The architecture's layers; named ones become submodules (`conv1`, `fc1`, ...).
    stamp_size : int
        Side S of the input stamps, pixels.
    channels : int
        Input channels C.
    """

    def __init__(self, layers: tuple[Layer, ...], stamp_size: int, channels: int) -> None:
        super().__init__()
        self.stamp_size = stamp_size
        self.channels = channels
        self.layers = layers
        shape = (channels, stamp_size, stamp_size)
        for layer in layers:
            module = torch_module(layer, shape)
            if module is not None and not hasattr(self, layer.name):  # `pool` serves 3 blocks
                self.add_module(layer.name, module)
            shape = output_shape(layer, shape)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores, shape (N,), for training with a numerically stable loss."""
        for layer in self.layers:
            if isinstance(layer, ReLU):
                x = torch.relu(x)
            elif isinstance(layer, Flatten):
                x = torch.flatten(x, 1)
            else:
                x = getattr(self, layer.name)(x)
        return x.squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reliabilities in [0, 1], shape (N,), for stamps of shape (N, channels, S, S)."""
        return torch.sigmoid(self.logits(x))


def torch_module(layer: Layer, shape: tuple[int, ...]) -> nn.Module | None:
    """The torch module of a named layer for a per-stamp input `shape`; None for ReLU, Flatten."""
    if isinstance(layer, Conv):
        return nn.Conv2d(shape[0], layer.out_channels, layer.kernel)
    if isinstance(layer, Linear):
        return nn.Linear(shape[0], layer.out_features)
    if isinstance(layer, MaxPool):
        return nn.MaxPool2d(layer.size, layer.size)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    return None


def build_network(architecture: Architecture, stamp_size: int, channels: int = 3) -> Network:
    """The torch module of `architecture` for stamps (N, channels, S, S), freshly initialised."""
    architecture.check_size(stamp_size, channels)
    return Network(architecture.layers, stamp_size, channels)


def build_model(architecture: str, stamp_size: int, channels: int = 3) -> Network:
    """Build a registered architecture for stamps of side `stamp_size`."""
    return build_network(get_architecture(architecture), stamp_size, channels)


class DMTN337CNN(Network):
    """The DMTN-337 CNN as a class (`build_model("dmtn337-cnn", S)` builds the same network).

    Parameters
    ----------
    stamp_size : int
        Side S of the square input stamps, pixels. 51 gives the note's flatten size 64x2x2 = 256
        and 73,569 parameters; other sizes derive the flatten size from the same layers.
    channels : int
        Input channels (3: difference, science, template).
    dropout : float
        Dropout probability after each conv block.
    """

    def __init__(self, stamp_size: int = 51, channels: int = 3, dropout: float = 0.4) -> None:
        layers = tuple(
            Dropout(layer.name, dropout) if isinstance(layer, Dropout) else layer
            for layer in DMTN337_LAYERS
        )
        Architecture("dmtn337-cnn", layers, "DMTN337CNN").check_size(stamp_size, channels)
        super().__init__(layers, stamp_size, channels)


def network_from_weights(
    architecture: str, stamp_size: int, channels: int, weights: Mapping[str, np.ndarray]
) -> Network:
    """The network of a registered architecture holding numpy `weights` (name -> float32 array,
    `ModelPackage.weights`; strictly: every parameter named, no other), in eval mode.

    torch's global random generator is left as it was (the initialisation it would draw is
    overwritten anyway).
    """
    with torch.random.fork_rng(devices=[]):
        model = build_model(architecture, stamp_size, channels)
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()}, strict=True)
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
