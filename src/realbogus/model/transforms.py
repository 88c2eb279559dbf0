"""Input transforms: the pixel preprocessing a model card declares, each defined once.

A transform maps stamps (N, C, S, S) float32 in pixel units to the network's input, with the
card's per-channel `preprocessing_scale` (C,). Each registered transform knows its four forms:
torch (training, the torch backend), numpy (the Scorer's ONNX path: numpy's selection and SIMD
arcsinh cost ~10 us per 63-px stamp where ONNX Runtime's TopK and scalar Asinh cost ~300 us),
ONNX nodes (self-contained graphs for others, `export_onnx(..., preprocessed_input=False)`) and
the source lines of Rubin's `arch.py` (Rubin's interface feeds raw pixels, so an exported network
applies its transform itself). The torch forms use tensor methods only: this module does not
import torch (a package's card is validated without it).

- ``none``: raw pixels (Rubin's production convention).
- ``asinh``: asinh(x / s_c), s_c the training stamps' robust noise per channel, in pixel units.
- ``asinh-noise``: asinh(x / (s_c sigma)), sigma the stamp's own difference noise (`stamp_noise`)
  and s_c dimensionless: stamps in units of their own noise, so one model serves any depth, pixel
  unit or survey calibration (docs/training.md).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..numeric import MAD_TO_SIGMA
from ..stamps import NOISE_FLOOR, NOISE_STEP, stamp_noise_array

if TYPE_CHECKING:
    import torch

__all__ = [
    "PREPROCESSING",
    "TRANSFORMS",
    "Transform",
    "get_transform",
    "preprocess",
    "preprocess_array",
    "preprocess_pixels",
    "register_transform",
    "stamp_noise",
]


def stamp_noise(x: torch.Tensor) -> torch.Tensor:
    """Robust noise of each stamp's difference plane: MAD_TO_SIGMA x median |d| over its non-zero
    pixels (every `NOISE_STEP`-th along each axis; zeros are invalid or padded pixels).

    (N, C, S, S) -> (N,), in pixel units; `NOISE_FLOOR` when the plane has no valid pixel.
    The difference has median ~0, so median |d| is its median absolute deviation.
    """
    d = x[:, 0, ::NOISE_STEP, ::NOISE_STEP].abs().flatten(1)
    n = d.shape[1]
    zeros = (d == 0).sum(dim=1, keepdim=True)
    middle = (zeros + (n - zeros) // 2).clamp(max=n - 1)
    median = d.sort(dim=1).values.gather(1, middle).squeeze(1)
    return (MAD_TO_SIGMA * median).clamp(min=NOISE_FLOOR)


class Transform:
    """An input transform: `id`, whether it needs the card's scale, and its four forms.

    Subclasses implement `torch`, `numpy`, `onnx_nodes` and `rubin_forward`; `rubin_buffer` names
    the buffer holding the scale in an exported Rubin network (None: no scale), which is also how
    an imported Rubin network tells its transform.
    """

    id: str = ""
    scaled: bool = True
    rubin_buffer: str | None = None

    def torch(self, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        """(N, C, S, S) pixels, scale (1, C, 1, 1) or None -> the network's input."""
        raise NotImplementedError

    def numpy(self, x: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
        """`torch` in numpy: a new float32 array; scale (1, C, 1, 1) float32 or None."""
        raise NotImplementedError

    def onnx_nodes(self, helper, source: str, stamp_size: int, constants: dict) -> tuple[list, str]:
        """ONNX nodes from tensor `source` with the initialiser ``preprocessing_scale``
        (1, C, 1, 1); constants they need go into `constants` (name -> list or float32 array).
        Returns (nodes, output tensor name)."""
        raise NotImplementedError

    def rubin_forward(self) -> list[str]:
        """Source lines of an exported network's `forward` turning raw ``x`` into its input."""
        raise NotImplementedError

    def rubin_helpers(self) -> str:
        """Module-level source the forward lines need (functions, constants); '' if none."""
        return ""


class NoTransform(Transform):
    """``none``: the raw pixels."""

    id = "none"
    scaled = False

    def torch(self, x, scale):
        return x

    def numpy(self, x, scale):
        return np.array(x, dtype=np.float32)

    def onnx_nodes(self, helper, source, stamp_size, constants):
        return [], source

    def rubin_forward(self):
        return []


class AsinhTransform(Transform):
    """``asinh``: asinh(x / s_c), s_c in pixel units."""

    id = "asinh"
    rubin_buffer = "preprocessing_scale"

    def torch(self, x, scale):
        return (x / scale).asinh()

    def numpy(self, x, scale):
        out = np.divide(x, scale, dtype=np.float32)
        return np.arcsinh(out, out=out)

    def onnx_nodes(self, helper, source, stamp_size, constants):
        return [
            helper.make_node("Div", [source, "preprocessing_scale"], ["scaled"]),
            helper.make_node("Asinh", ["scaled"], ["preprocessed"]),
        ], "preprocessed"

    def rubin_forward(self):
        return [f"x = torch.asinh(x / self.{self.rubin_buffer})"]


class AsinhNoiseTransform(Transform):
    """``asinh-noise``: asinh(x / (s_c sigma)), sigma = `stamp_noise` of each stamp."""

    id = "asinh-noise"
    rubin_buffer = "noise_scale"

    def torch(self, x, scale):
        return (x / (scale * stamp_noise(x).view(-1, 1, 1, 1))).asinh()

    def numpy(self, x, scale):
        return AsinhTransform.numpy(self, x, scale * stamp_noise_array(x).reshape(-1, 1, 1, 1))

    def onnx_nodes(self, helper, source, stamp_size, constants):
        n = len(range(0, stamp_size, NOISE_STEP)) ** 2
        constants.update(
            {
                "d_start": [0, 0, 0],
                "d_end": [1, stamp_size, stamp_size],
                "d_axes": [1, 2, 3],
                "d_steps": [1, NOISE_STEP, NOISE_STEP],
                "n_pixels": [n],
                "n_last": [n - 1],
                "two": [2],
                "axis1": [1],
                "shape4": [-1, 1, 1, 1],
            }
        )
        floats = {"zero": 0.0, "mad_factor": MAD_TO_SIGMA, "noise_floor": NOISE_FLOOR}
        constants.update({name: np.array([value], np.float32) for name, value in floats.items()})
        node = helper.make_node
        return [  # stamp_noise: the median of |d| by a sort (TopK), zeros ranked first
            node("Slice", [source, "d_start", "d_end", "d_axes", "d_steps"], ["d_sub"]),
            node("Abs", ["d_sub"], ["d_abs4"]),
            node("Flatten", ["d_abs4"], ["d_abs"], axis=1),
            node(
                "TopK", ["d_abs", "n_pixels"], ["d_sorted", "d_order"], axis=1, largest=0, sorted=1
            ),
            node("Equal", ["d_abs", "zero"], ["d_is_zero"]),
            node("Cast", ["d_is_zero"], ["d_zero_int"], to=7),  # int64
            node("ReduceSum", ["d_zero_int", "axis1"], ["zeros"], keepdims=1),
            node("Sub", ["n_pixels", "zeros"], ["valid"]),
            node("Div", ["valid", "two"], ["half"]),  # integer division
            node("Add", ["zeros", "half"], ["middle_raw"]),
            node("Min", ["middle_raw", "n_last"], ["middle"]),
            node("GatherElements", ["d_sorted", "middle"], ["median"], axis=1),
            node("Mul", ["median", "mad_factor"], ["mad"]),
            node("Max", ["mad", "noise_floor"], ["stamp_noise"]),
            node("Reshape", ["stamp_noise", "shape4"], ["noise4"]),
            node("Mul", ["preprocessing_scale", "noise4"], ["noise_scale"]),
            node("Div", [source, "noise_scale"], ["scaled"]),
            node("Asinh", ["scaled"], ["preprocessed"]),
        ], "preprocessed"

    def rubin_forward(self):
        return [
            f"x = torch.asinh(x / (self.{self.rubin_buffer} * stamp_noise(x).view(-1, 1, 1, 1)))"
        ]

    def rubin_helpers(self):
        # The exported file is self-contained: our own stamp_noise, with its constants.
        constants = (
            f"MAD_TO_SIGMA = {MAD_TO_SIGMA}\nNOISE_STEP = {NOISE_STEP}\nNOISE_FLOOR = {NOISE_FLOOR}"
        )
        return f"{constants}\n\n\n{inspect.getsource(stamp_noise)}"


#: Registered transforms by id (the card's `preprocessing`).
TRANSFORMS: dict[str, Transform] = {}


def register_transform(transform: Transform) -> Transform:
    """Add a transform to the registry; returns it."""
    TRANSFORMS[transform.id] = transform
    return transform


for _transform in (NoTransform(), AsinhTransform(), AsinhNoiseTransform()):
    register_transform(_transform)

#: Named pixel preprocessing a card may declare (the registered transforms' ids).
PREPROCESSING = tuple(TRANSFORMS)


def get_transform(preprocessing: str) -> Transform:
    """A registered transform; an unknown id lists the known ones (ConfigError)."""
    try:
        return TRANSFORMS[preprocessing]
    except KeyError:
        msg = f"unknown preprocessing {preprocessing!r}; known: {sorted(TRANSFORMS)}"
        raise ConfigError(msg) from None


def preprocess(card, x: torch.Tensor) -> torch.Tensor:
    """The card's pixel preprocessing applied to stamps (N, C, S, S) in pixel units."""
    transform = get_transform(card.preprocessing)
    scale = None
    if transform.scaled:
        scale = x.new_tensor(card.preprocessing_scale).view(1, -1, 1, 1)
    return transform.torch(x, scale)


def preprocess_array(card, x: np.ndarray) -> np.ndarray:
    """`preprocess` in numpy: (N, C, S, S) float32 in pixel units -> a new float32 array.

    numpy's SIMD arcsinh takes ~5 us per 63-px stamp where ONNX Runtime's scalar Asinh takes
    ~200 us, so the Scorer preprocesses here and feeds the graph what it returns.
    """
    return preprocess_pixels(x, card.preprocessing, card.preprocessing_scale)


def preprocess_pixels(x: np.ndarray, preprocessing: str, scale) -> np.ndarray:
    """A preprocessing with its per-channel `scale` (C,) on stamps (N, C, S, S): a new float32
    array. What `preprocess_array` applies for a card and training for a new model."""
    transform = get_transform(preprocessing)
    if transform.scaled:
        scale = np.asarray(scale, dtype=np.float32).reshape(1, -1, 1, 1)
    return transform.numpy(x, scale)
