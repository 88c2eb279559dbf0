"""bf16 inference through torch (oneDNN on the CPU): the convolutions in bfloat16, channels-last.

`Bf16Network` runs a package's network with its convolution blocks in bfloat16 (weights and
activations; oneDNN accumulates in fp32) on channels-last tensors, and its dense tail in fp32.
As in the ONNX graph (`architectures.onnx_nodes`), each convolution followed by ReLU and a
floor-mode max-pool reads only the rows and columns the pool keeps; the pool runs before the
ReLU (the same numbers, a quarter of the ReLU's work) as maxima of strided views.
Measured per CPU-second on one core (AMD EPYC, avx512_bf16, no AMX; docs/benchmarks.md):
oneDNN's bf16 convolutions (brgconv avx512_core_bf16) reach ~150 GMAC/s against ONNX Runtime's
fp32 ~100, so the whole network is ~1.2x ONNX Runtime fp32, not 2x: the pools, ReLUs and the
numpy preprocessing (~20 us of a 51-px stamp's ~80 us) do not shrink with the precision. Whether bf16 may score a
package's data is decided by `inference.precision.check_precision`, never here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..model.architectures import Conv, Dropout, Flatten, Linear, MaxPool, ReLU
from ..model.network import Network

__all__ = ["Bf16Network"]


class Bf16Network(nn.Module):
    """A `Network`'s layers with bfloat16 convolutions; output reliabilities (N,) float32.

    Parameters
    ----------
    network : Network
        The package's torch module (its weights are copied, the module is not changed).
    """

    def __init__(self, network: Network) -> None:
        super().__init__()
        layers = network.layers
        self.steps: list[tuple[str, object]] = []
        self.blocks = nn.ModuleDict()
        shape: tuple[int, ...] = (network.channels, network.stamp_size, network.stamp_size)
        converted = False
        for i, layer in enumerate(layers):
            if isinstance(layer, Conv):
                pool = layers[i + 2] if i + 2 < len(layers) else None
                used = shape[1]
                if isinstance(layers[i + 1], ReLU) and isinstance(pool, MaxPool):
                    side = shape[1] - layer.kernel + 1
                    used = side // pool.size * pool.size + layer.kernel - 1
                conv = getattr(network, layer.name)
                copy = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size)
                copy.load_state_dict(conv.state_dict())
                self.blocks[layer.name] = copy.to(torch.bfloat16).to(
                    memory_format=torch.channels_last
                )
                self.steps.append(("conv", (layer.name, used)))
                shape = (
                    layer.out_channels,
                    shape[1] - layer.kernel + 1,
                    shape[2] - layer.kernel + 1,
                )
            elif isinstance(layer, ReLU):
                self.steps.append(("relu", None))
            elif isinstance(layer, MaxPool):
                if self.steps and self.steps[-1][0] == "relu":
                    # max-pool then ReLU: the same numbers (ReLU is monotone), ReLU on 1/4 of them
                    self.steps[-1] = ("pool_relu", layer.size)
                else:
                    self.steps.append(("pool", layer.size))
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
            elif isinstance(layer, Flatten):
                self.steps.append(("flatten", None))
                converted = True
            elif isinstance(layer, Linear):
                dense = getattr(network, layer.name)
                copy = nn.Linear(dense.in_features, dense.out_features)
                copy.load_state_dict(dense.state_dict())
                self.blocks[layer.name] = copy  # the dense tail stays fp32 (tiny)
                self.steps.append(("linear", layer.name))
            elif not isinstance(layer, Dropout):  # pragma: no cover - a new layer kind
                msg = f"Bf16Network does not know layer {layer!r}"
                raise TypeError(msg)
        if not converted:  # pragma: no cover - every registered architecture flattens
            msg = "Bf16Network needs a Flatten between the convolutions and the dense layers"
            raise TypeError(msg)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reliabilities (N,) float32 of preprocessed stamps (N, C, S, S) float32."""
        x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        for kind, arg in self.steps:
            if kind == "conv":
                name, used = arg
                x = self.blocks[name](x[:, :, :used, :used])
            elif kind == "relu":
                x = torch.relu(x)
            elif kind == "pool_relu":
                x = torch.relu_(_max_pool(x, arg))
            elif kind == "pool":
                x = _max_pool(x, arg)
            elif kind == "flatten":
                x = torch.flatten(x.float().contiguous(), 1)
            else:
                x = self.blocks[arg](x)
        return torch.sigmoid(x.squeeze(1))

    def predict(self, data: np.ndarray) -> np.ndarray:
        """Reliabilities (N,) float32 of one batch of preprocessed stamps (N, C, S, S) float32."""
        with torch.inference_mode():
            return self(torch.from_numpy(np.ascontiguousarray(data))).numpy()


def _max_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """Floor-mode max-pooling (N, C, H, W) -> (N, C, H // size, W // size) as elementwise maxima
    of strided views, rows first (on channels-last tensors each row view reads whole rows), then
    columns: on bfloat16 channels-last tensors ~2.6x cheaper than `max_pool2d`, which also
    computes indices, and ~1.3x cheaper than maxima over the size x size offsets; the same
    numbers."""
    h, w = x.shape[2] // size * size, x.shape[3] // size * size
    rows = x[:, :, 0:h:size, :w]
    for dy in range(1, size):
        rows = torch.maximum(rows, x[:, :, dy:h:size, :w])
    out = rows[:, :, :, 0::size]
    for dx in range(1, size):
        out = torch.maximum(out, rows[:, :, :, dx::size])
    return out


class Bf16Session:
    """A `Bf16Network` behind ONNX Runtime's `run(outputs, feeds)` call, so that `OnnxRunner`
    drives it the same way: one per core, each in its own thread with torch's ops
    single-threaded (they release the GIL)."""

    def __init__(self, network: Bf16Network) -> None:
        self.network = network

    def run(self, _outputs, feeds: dict) -> list[np.ndarray]:
        return [self.network.predict(feeds["stamps"])]
