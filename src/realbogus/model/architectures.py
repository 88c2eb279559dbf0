"""Network architectures: each defined once, as a sequence of layers.

From that one definition come the parameter names and shapes a package's weights must have
(`Architecture.parameter_shapes`), the torch module (training, the torch backend:
`realbogus.model.network`, the only part that imports torch), the ONNX nodes (the Scorer's CPU
backend, `realbogus.inference.onnx`) and the Python source of Rubin's `arch.py`
(`realbogus.model.rubin`). This module does not import torch. A new architecture is a new
`Architecture(...)` passed to `register`, with no edit anywhere else.

Every network takes stamps (N, C, S, S) float32 in [difference, science, template] order and
ends in one logit per stamp; `forward` is its sigmoid, shape (N,), as Rubin's interface expects.

The DMTN-337 CNN (section 2 of the note): three valid 5x5 conv blocks (16/32/64 filters, ReLU,
maxpool 2, dropout 0.4), flatten (64x2x2 = 256 at S = 51), linear 32, ReLU, linear 1. Layer names
(`conv1`...`fc2`) follow the tac_cnn lineage so state dicts move between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Conv",
    "DMTN337_LAYERS",
    "Dropout",
    "Flatten",
    "Linear",
    "MaxPool",
    "ReLU",
    "get_architecture",
    "multiply_adds",
    "onnx_nodes",
    "register",
    "torch_source",
]


@dataclass(frozen=True)
class Conv:
    """A valid (unpadded) square convolution with bias: (N, C, H, W) -> (N, out, H-k+1, W-k+1)."""

    name: str
    out_channels: int
    kernel: int


@dataclass(frozen=True)
class ReLU:
    """max(x, 0), elementwise."""


@dataclass(frozen=True)
class MaxPool:
    """Non-overlapping max pooling, floor mode: (N, C, H, W) -> (N, C, H // size, W // size)."""

    size: int = 2
    name: str = "pool"


@dataclass(frozen=True)
class Dropout:
    """Dropout with probability `p` in training; the identity at inference (and in ONNX)."""

    name: str
    p: float


@dataclass(frozen=True)
class Flatten:
    """(N, ...) -> (N, prod(...))."""


@dataclass(frozen=True)
class Linear:
    """A dense layer with bias: (N, in) -> (N, out_features)."""

    name: str
    out_features: int


Layer = Conv | ReLU | MaxPool | Dropout | Flatten | Linear


def output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-stamp output shape of `layer` for a per-stamp input `shape` (without N)."""
    if isinstance(layer, Conv):
        return (layer.out_channels, shape[1] - layer.kernel + 1, shape[2] - layer.kernel + 1)
    if isinstance(layer, MaxPool):
        return (shape[0], shape[1] // layer.size, shape[2] // layer.size)
    if isinstance(layer, Flatten):
        size = 1
        for side in shape:
            size *= side
        return (size,)
    if isinstance(layer, Linear):
        return (layer.out_features,)
    return shape


@dataclass(frozen=True)
class Architecture:
    """A registered network: an id (the card's `architecture`), its layers, and a class name.

    Attributes
    ----------
    id : str
        The id model cards name, e.g. ``"dmtn337-cnn"``.
    layers : tuple of layers
        Conv/ReLU/MaxPool/Dropout/Flatten/Linear in order; the last is a Linear with one output.
    class_name : str
        The class name in the exported Rubin `arch.py`.
    description : str
        One line for `realbogus models` and the docs.
    """

    id: str
    layers: tuple[Layer, ...]
    class_name: str
    description: str = ""

    def shapes(self, stamp_size: int, channels: int = 3) -> list[tuple[int, ...]]:
        """Per-stamp shapes after each layer, for an input (channels, S, S)."""
        shape: tuple[int, ...] = (channels, stamp_size, stamp_size)
        out = []
        for layer in self.layers:
            shape = output_shape(layer, shape)
            out.append(shape)
        return out

    def check_size(self, stamp_size: int, channels: int = 3) -> None:
        """Raise ConfigError when stamps of this size leave a layer with no output."""
        if any(min(shape) < 1 for shape in self.shapes(stamp_size, channels)):
            smallest = next(s for s in range(1, 1024) if self._fits(s, channels))
            msg = (
                f"stamp_size must be at least {smallest} pixels for {self.id}'s layers; "
                f"got {stamp_size}"
            )
            raise ConfigError(msg)

    def _fits(self, stamp_size: int, channels: int) -> bool:
        return all(min(shape) >= 1 for shape in self.shapes(stamp_size, channels))

    def parameter_shapes(self, stamp_size: int, channels: int = 3) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every weight, in the torch module's state-dict order.

        Conv: ``{name}.weight`` (out, in, k, k) and ``{name}.bias`` (out,); Linear:
        ``{name}.weight`` (out, in) and ``{name}.bias`` (out,); the other layers hold none.
        What a package's `weights.safetensors` must hold, checked before anything is read.
        """
        self.check_size(stamp_size, channels)
        shapes: dict[str, tuple[int, ...]] = {}
        shape: tuple[int, ...] = (channels, stamp_size, stamp_size)
        for layer in self.layers:
            if isinstance(layer, Conv):
                shapes[f"{layer.name}.weight"] = (
                    layer.out_channels,
                    shape[0],
                    layer.kernel,
                    layer.kernel,
                )
                shapes[f"{layer.name}.bias"] = (layer.out_channels,)
            elif isinstance(layer, Linear):
                shapes[f"{layer.name}.weight"] = (layer.out_features, shape[0])
                shapes[f"{layer.name}.bias"] = (layer.out_features,)
            shape = output_shape(layer, shape)
        return shapes


#: DMTN-337 section 2, exactly.
DMTN337_LAYERS: tuple[Layer, ...] = (
    *(
        layer
        for i, filters in ((1, 16), (2, 32), (3, 64))
        for layer in (Conv(f"conv{i}", filters, 5), ReLU(), MaxPool(2), Dropout(f"dropout{i}", 0.4))
    ),
    Flatten(),
    Linear("fc1", 32),
    ReLU(),
    Linear("fc2", 1),
)

#: Registered architectures by id.
ARCHITECTURES: dict[str, Architecture] = {}


def register(architecture: Architecture) -> Architecture:
    """Add an architecture to the registry (an id is registered once); returns it."""
    last = architecture.layers[-1] if architecture.layers else None
    if not (isinstance(last, Linear) and last.out_features == 1):
        msg = f"{architecture.id}: the last layer must be a Linear with one output (the logit)"
        raise ConfigError(msg)
    if architecture.id in ARCHITECTURES and ARCHITECTURES[architecture.id] != architecture:
        msg = f"architecture {architecture.id!r} is already registered with other layers"
        raise ConfigError(msg)
    ARCHITECTURES[architecture.id] = architecture
    return architecture


register(
    Architecture(
        "dmtn337-cnn",
        DMTN337_LAYERS,
        class_name="DMTN337CNN",
        description="DMTN-337 section 2: three 5x5 conv blocks (16/32/64), 256 -> 32 -> 1",
    )
)


def get_architecture(architecture: str) -> Architecture:
    """A registered architecture; an unknown id lists the registered ones (ConfigError)."""
    try:
        return ARCHITECTURES[architecture]
    except KeyError:
        msg = f"unknown architecture {architecture!r}; registered: {sorted(ARCHITECTURES)}"
        raise ConfigError(msg) from None


def onnx_nodes(
    architecture: Architecture,
    helper,
    source: str,
    stamp_size: int,
    channels: int,
    constants: dict[str, list[int]],
    *,
    crop: bool = True,
) -> tuple[list, str]:
    """ONNX nodes (opset 17) of the network from tensor `source` (N, C, S, S) to its logit (N, 1).

    Weights are the initialisers named as the state dict (`conv1.weight`, ...); integer constants
    the nodes need are added to `constants`. Dropout is the identity and is left out. With `crop`,
    a convolution followed by ReLU and a floor-mode max-pool gets its input cropped to the rows
    and columns the pool reads (for S = 51: 50, 22 and 8 of 51, 23 and 9): the same numbers for
    ~12 % fewer multiply-adds. `helper` is `onnx.helper` (this module does not import onnx).
    Returns (nodes, name of the logit tensor).
    """
    nodes, current = [], source
    shape: tuple[int, ...] = (channels, stamp_size, stamp_size)
    layers = architecture.layers
    for i, layer in enumerate(layers):
        out = f"{getattr(layer, 'name', type(layer).__name__.lower())}_{i}"
        if isinstance(layer, Conv):
            pool = layers[i + 2] if i + 2 < len(layers) else None
            if crop and isinstance(layers[i + 1], ReLU) and isinstance(pool, MaxPool):
                side = shape[1] - layer.kernel + 1
                used = side // pool.size * pool.size + layer.kernel - 1
                if used < shape[1]:
                    constants.update(
                        {"hw_axes": [2, 3], "hw_start": [0, 0], f"hw_end_{i}": [used] * 2}
                    )
                    nodes.append(
                        helper.make_node(
                            "Slice", [current, "hw_start", f"hw_end_{i}", "hw_axes"], [f"crop_{i}"]
                        )
                    )
                    current = f"crop_{i}"
            weights = [f"{layer.name}.weight", f"{layer.name}.bias"]
            nodes.append(
                helper.make_node(
                    "Conv", [current, *weights], [out], kernel_shape=[layer.kernel] * 2
                )
            )
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif isinstance(layer, MaxPool):
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [current],
                    [out],
                    kernel_shape=[layer.size] * 2,
                    strides=[layer.size] * 2,
                )
            )
        elif isinstance(layer, Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out], axis=1))
        elif isinstance(layer, Linear):
            weights = [f"{layer.name}.weight", f"{layer.name}.bias"]
            nodes.append(helper.make_node("Gemm", [current, *weights], [out], transB=1))
        else:  # Dropout: the identity at inference
            continue
        current, shape = out, output_shape(layer, shape)
    return nodes, current


def multiply_adds(
    architecture: Architecture, stamp_size: int, channels: int = 3, *, crop: bool = True
) -> int:
    """Multiply-adds per stamp of the network's convolutions and dense layers.

    With `crop`, a convolution followed by ReLU and a floor-mode max-pool counts only the
    outputs the pool reads, as the ONNX graph (`onnx_nodes`) and `inference.bf16` compute them.
    """
    total, shape, layers = 0, (channels, stamp_size, stamp_size), architecture.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, Conv):
            out = shape[1] - layer.kernel + 1
            pool = layers[i + 2] if i + 2 < len(layers) else None
            if crop and isinstance(layers[i + 1], ReLU) and isinstance(pool, MaxPool):
                out = out // pool.size * pool.size
            total += out * out * layer.out_channels * shape[0] * layer.kernel**2
        elif isinstance(layer, Linear):
            total += shape[0] * layer.out_features
        shape = output_shape(layer, shape)
    return total


def torch_source(
    architecture: Architecture, stamp_size: int, channels: int
) -> tuple[list[str], list[str]]:
    """Python source lines of the network for a self-contained torch `arch.py` (Rubin's layout).

    Returns (lines of ``__init__`` after ``super().__init__()``, lines of ``forward`` from the
    input ``x`` to the logit ``x`` of shape (N, 1)); both unindented.
    """
    init, forward, defined = [], [], set()
    shape: tuple[int, ...] = (channels, stamp_size, stamp_size)
    for layer in architecture.layers:
        if isinstance(layer, Conv):
            init.append(
                f"self.{layer.name} = nn.Conv2d({shape[0]}, {layer.out_channels}, kernel_size={layer.kernel})"
            )
        elif isinstance(layer, Linear):
            init.append(f"self.{layer.name} = nn.Linear({shape[0]}, {layer.out_features})")
        elif isinstance(layer, MaxPool) and layer.name not in defined:
            init.append(f"self.{layer.name} = nn.MaxPool2d({layer.size}, {layer.size})")
        elif isinstance(layer, Dropout):
            init.append(f"self.{layer.name} = nn.Dropout({layer.p})")
        defined.add(getattr(layer, "name", None))
        if isinstance(layer, ReLU):
            forward.append("x = torch.relu(x)")
        elif isinstance(layer, Flatten):
            forward.append("x = torch.flatten(x, 1)")
        else:
            forward.append(f"x = self.{layer.name}(x)")
        shape = output_shape(layer, shape)
    return init, forward
