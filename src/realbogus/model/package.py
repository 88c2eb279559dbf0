"""Model packages: `weights.safetensors` + `card.json`; loading, saving, the built-in versions.

A package is a directory (or a .zip of one). Loading reads JSON and safetensors only: nothing is
unpickled and no code from a package is executed. The card names a registered architecture
(`realbogus.model.architectures`); the weights must match it exactly (keys, shapes, dtype) or
loading fails. Sizes are checked before anything is read into memory.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import __version__
from ..errors import PackageError
from ..io.atomic import atomic_directory, atomic_path
from ..io.jsonfile import dumps_strict
from .architectures import build_model
from .card import CARD, ModelCard

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


@dataclass(frozen=True)
class ModelPackage:
    """A loaded package: its card and the model (eval mode, on CPU)."""

    card: ModelCard
    model: torch.nn.Module
    source: str

    @property
    def version(self) -> str:
        """The model version string written into `reliabilityVersion`."""
        return self.card.version


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


def _model_from_weights(card: ModelCard, weights_path: Path, where: str) -> torch.nn.Module:
    """Build the card's architecture and fill it from safetensors, checking before loading."""
    model = build_model(card.architecture, card.stamp_size, len(card.channels))
    expected = model.state_dict()
    size = weights_path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        msg = f"{where}: weights file is {size} bytes, over the {MAX_WEIGHTS_BYTES}-byte limit"
        raise PackageError(msg)
    try:
        with safe_open(str(weights_path), framework="pt") as f:
            keys = set(f.keys())
            missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
            if missing or extra:
                msg = (
                    f"{where}: weights do not match card architecture {card.architecture!r} at "
                    f"stamp_size {card.stamp_size}: missing {missing}, unexpected {extra}"
                )
                raise PackageError(msg)
            for key, tensor in expected.items():
                shape = list(f.get_slice(key).get_shape())
                if shape != list(tensor.shape):
                    msg = (
                        f"{where}: weight {key!r} has shape {shape}, card architecture "
                        f"{card.architecture!r} at stamp_size {card.stamp_size} needs {list(tensor.shape)}"
                    )
                    raise PackageError(msg)
            state = {key: f.get_tensor(key) for key in expected}
    except SafetensorError as exc:
        msg = f"{where}: corrupt weights file ({exc})"
        raise PackageError(msg) from exc
    for key, tensor in state.items():
        if tensor.dtype != torch.float32:
            msg = f"{where}: weight {key!r} has dtype {tensor.dtype}; packages store float32"
            raise PackageError(msg)
        if not torch.isfinite(tensor).all():
            msg = f"{where}: weight {key!r} holds non-finite values"
            raise PackageError(msg)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _load_directory(path: Path) -> ModelPackage:
    card_path, weights_path = path / CARD, path / WEIGHTS
    for needed in (card_path, weights_path):
        if not needed.is_file():
            msg = f"{path}: not a model package (missing {needed.name})"
            raise PackageError(msg)
    card = _card_from_bytes(card_path.read_bytes(), str(card_path))
    model = _model_from_weights(card, weights_path, str(weights_path))
    return ModelPackage(card=card, model=model, source=str(path))


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
    return ModelPackage(card=package.card, model=package.model, source=str(path))


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
    model: torch.nn.Module,
    card: ModelCard,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a package directory atomically (or a .zip when `path` ends in .zip)."""
    path = Path(path)
    if path.exists() and not overwrite:
        msg = (
            f"{path} already exists; choose another path or remove it (from Python: overwrite=True)"
        )
        raise PackageError(msg)
    reference = build_model(card.architecture, card.stamp_size, len(card.channels)).state_dict()
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    if set(state) != set(reference) or any(state[k].shape != reference[k].shape for k in reference):
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


def _write_directory(folder: Path, state: dict[str, torch.Tensor], card: ModelCard) -> None:
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
