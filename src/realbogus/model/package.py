"""Model packages: `weights.safetensors` + `card.json`; loading, saving, the built-in versions.

A package is a directory (or a .zip of one). Loading reads JSON and safetensors only: nothing is
unpickled and no code from a package is executed. The card names a registered architecture
(`realbogus.model.architectures`); the weights must match it exactly (names, shapes, dtype) or
loading fails. Sizes, names, shapes and dtypes are checked before any weight is read into
memory. Loading reads the weights as numpy arrays and does not import torch: the torch module
(`ModelPackage.model`, `realbogus.model.network`) is built from them on first use, so scoring
with ONNX Runtime never imports torch.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .. import __version__
from ..errors import PackageError
from ..io.atomic import atomic_directory, atomic_path
from ..io.jsonfile import dumps_strict
from .architectures import get_architecture
from .card import CARD, ModelCard

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_WEIGHTS_BYTES",
    "WEIGHTS",
    "ModelPackage",
    "builtin_models",
    "init_package",
    "load_package",
    "save_package",
]

WEIGHTS = "weights.safetensors"
_MAX_CARD_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 256 << 20
_BUILTIN_ROOT = "models"
#: The one dtype packages store (safetensors' name for float32).
_DTYPE = "F32"


@dataclass(frozen=True, eq=False)
class ModelPackage:
    """A loaded package: its card and weights.

    Attributes
    ----------
    card : ModelCard
    weights : mapping of str to ndarray
        The network's parameters, float32, read-only, by state-dict name (``conv1.weight``
        (16, 3, 5, 5), ...) in the order of `Architecture.parameter_shapes`.
    source : str
        Where the package was loaded from.
    """

    card: ModelCard
    weights: Mapping[str, np.ndarray]
    source: str

    @property
    def version(self) -> str:
        """The model version string written into `reliabilityVersion`."""
        return self.card.version

    @functools.cached_property
    def model(self) -> torch.nn.Module:
        """The torch module of the card's architecture holding `weights` (eval mode, on CPU).

        Built on first use (this imports torch); the same module afterwards. It is for running
        the network: changing its parameters does not change `weights`, the ONNX graph or the
        package on disk.
        """
        from .network import network_from_weights

        card = self.card
        return network_from_weights(
            card.architecture, card.stamp_size, len(card.channels), self.weights
        )

    def __getstate__(self) -> dict:
        # The torch module stays behind (rebuilt on first use): unpickling a package, e.g. in an
        # alert-scoring worker, must not import torch.
        return {k: v for k, v in self.__dict__.items() if k != "model"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _card_from_bytes(raw: bytes, where: str) -> ModelCard:
    if len(raw) > _MAX_CARD_BYTES:
        msg = f"{where}: card is {len(raw)} bytes, over the {_MAX_CARD_BYTES}-byte limit"
        raise PackageError(msg)
    try:
        return ModelCard.model_validate(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{where}: card is not valid JSON ({exc})"
        raise PackageError(msg) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        msg = f"{where}: invalid card ({problems})"
        raise PackageError(msg) from exc


def _read_weights(card: ModelCard, weights_path: Path, where: str) -> dict[str, np.ndarray]:
    """The card's architecture's weights from safetensors as read-only float32 numpy arrays.

    The file's size, tensor names, shapes and dtypes are checked against the architecture
    (`Architecture.parameter_shapes`) before any tensor is read; then every value must be finite.
    """
    expected = get_architecture(card.architecture).parameter_shapes(
        card.stamp_size, len(card.channels)
    )
    size = weights_path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        msg = f"{where}: weights file is {size} bytes, over the {MAX_WEIGHTS_BYTES}-byte limit"
        raise PackageError(msg)
    try:
        with safe_open(str(weights_path), framework="numpy") as f:
            keys = set(f.keys())
            missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
            if missing or extra:
                msg = (
                    f"{where}: weights do not match card architecture {card.architecture!r} at "
                    f"stamp_size {card.stamp_size}: missing {missing}, unexpected {extra}"
                )
                raise PackageError(msg)
            for key, want in expected.items():
                tensor = f.get_slice(key)
                shape = list(tensor.get_shape())
                if shape != list(want):
                    msg = (
                        f"{where}: weight {key!r} has shape {shape}, card architecture "
                        f"{card.architecture!r} at stamp_size {card.stamp_size} needs {list(want)}"
                    )
                    raise PackageError(msg)
                if tensor.get_dtype() != _DTYPE:
                    msg = f"{where}: weight {key!r} has dtype {tensor.get_dtype()}; packages store float32 ({_DTYPE})"
                    raise PackageError(msg)
            state = {key: f.get_tensor(key) for key in expected}
    except SafetensorError as exc:
        msg = f"{where}: corrupt weights file ({exc})"
        raise PackageError(msg) from exc
    for key, array in state.items():
        if not np.isfinite(array).all():
            msg = f"{where}: weight {key!r} holds non-finite values"
            raise PackageError(msg)
        array.flags.writeable = False
    return state


def _load_directory(path: Path) -> ModelPackage:
    card_path, weights_path = path / CARD, path / WEIGHTS
    for needed in (card_path, weights_path):
        if not needed.is_file():
            msg = f"{path}: not a model package (missing {needed.name})"
            raise PackageError(msg)
    card = _card_from_bytes(card_path.read_bytes(), str(card_path))
    weights = _read_weights(card, weights_path, str(weights_path))
    return ModelPackage(card=card, weights=weights, source=str(path))


def _load_zip(path: Path) -> ModelPackage:
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(i.filename).name: i for i in archive.infolist() if not i.is_dir()}
            for needed in (CARD, WEIGHTS):
                if needed not in members:
                    msg = f"{path}: not a model package (no {needed} in the zip)"
                    raise PackageError(msg)
            limit = {CARD: _MAX_CARD_BYTES, WEIGHTS: MAX_WEIGHTS_BYTES}
            with tempfile.TemporaryDirectory() as tmp:
                for name in (CARD, WEIGHTS):
                    info = members[name]
                    if info.file_size > limit[name]:
                        msg = f"{path}: {name} is {info.file_size} bytes, over the {limit[name]}-byte limit"
                        raise PackageError(msg)
                    (Path(tmp) / name).write_bytes(archive.read(info))
                package = _load_directory(Path(tmp))
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"{path}: corrupt zip archive ({exc})"
        raise PackageError(msg) from exc
    return ModelPackage(card=package.card, weights=package.weights, source=str(path))


def builtin_models() -> dict[str, Path]:
    """Built-in packages shipped inside realbogus: {name: directory}."""
    root = resources.files("realbogus") / _BUILTIN_ROOT
    if not root.is_dir():
        return {}
    return {
        entry.name: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.is_dir() and (entry / CARD).is_file()
    }


def load_package(name_or_path: str | os.PathLike) -> ModelPackage:
    """Load a package from a directory, a .zip, or a built-in name (e.g. ``rubin-v0.1``)."""
    path = Path(name_or_path)
    if path.is_dir():
        return _load_directory(path)
    if path.is_file():
        return _load_zip(path)
    builtins = builtin_models()
    if str(name_or_path) in builtins:
        return _load_directory(builtins[str(name_or_path)])
    msg = f"{name_or_path}: no such package path or built-in model; built-in: {sorted(builtins) or 'none'}"
    raise PackageError(msg)


def save_package(
    path: str | os.PathLike,
    model: torch.nn.Module | Mapping[str, np.ndarray],
    card: ModelCard,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a package directory atomically (or a .zip when `path` ends in .zip).

    `model`: a torch module of the card's architecture, or its weights by state-dict name
    (`ModelPackage.weights`); stored as float32.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        msg = (
            f"{path} already exists; choose another path or remove it (from Python: overwrite=True)"
        )
        raise PackageError(msg)
    reference = get_architecture(card.architecture).parameter_shapes(
        card.stamp_size, len(card.channels)
    )
    items = model.items() if isinstance(model, Mapping) else model.state_dict().items()
    state = {k: _float32_array(v) for k, v in items}
    if set(state) != set(reference) or any(state[k].shape != reference[k] for k in reference):
        msg = f"model does not match card architecture {card.architecture!r} at stamp_size {card.stamp_size}"
        raise PackageError(msg)
    card = card.model_copy(update={"code_version": __version__})
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
            _write_directory(Path(tmp), state, card)
            with (
                atomic_path(path) as staged,
                zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive,
            ):
                for name in (CARD, WEIGHTS):
                    archive.write(Path(tmp) / name, name)
        return path
    with atomic_directory(path) as tmp:
        _write_directory(tmp, state, card)
    return path


def _float32_array(value) -> np.ndarray:
    """A torch tensor (any device) or an array as a C-contiguous float32 numpy array."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().to("cpu").float().numpy()
    return np.ascontiguousarray(value, dtype=np.float32)


def _write_directory(folder: Path, state: dict[str, np.ndarray], card: ModelCard) -> None:
    save_file(state, str(folder / WEIGHTS), metadata={"realbogus_version": card.version})
    (folder / CARD).write_text(dumps_strict(card.model_dump()) + "\n")
    _load_directory(folder)  # never publish a package that does not load back


def init_package(
    path: str | os.PathLike,
    *,
    stamp_size: int = 51,
    seed: int = 0,
    name: str = "untrained",
    version: str = "untrained",
    architecture: str = "dmtn337-cnn",
    overwrite: bool = False,
) -> Path:
    """Write a randomly initialised (untrained) package: for tests and as a training start."""
    import torch

    from .network import build_model

    torch.manual_seed(seed)
    model = build_model(architecture, stamp_size)
    card = ModelCard(
        name=name,
        version=version,
        architecture=architecture,
        stamp_size=stamp_size,
        description=f"randomly initialised with torch seed {seed}; not trained",
        hyperparameters={"init_seed": seed},
    )
    return save_package(path, model, card, overwrite=overwrite)
