"""Model packages: `weights.safetensors` + `card.json`, built-in versions, Rubin interchange.

A package is a directory (or a .zip of one). Loading reads JSON and safetensors only: nothing is
unpickled and no code from a package is executed. The architecture lives in `realbogus.model`
and the card names it; weights must match it exactly (keys, shapes, dtype) or loading fails.

Rubin's `meas_transiNet` layout (a checkpoint `*.pt` holding `model_state_dict`, `meta.yaml`, an
`arch*.py`; or the Butler zip with members `checkpoint`, `architecture`, `metadata`) is imported
with `torch.load(weights_only=True)` and never runs the architecture file.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .conditions import ConditionCorrection
from .errors import PackageError
from .model import ARCHITECTURES, build_model
from .stamps import CHANNELS, robust_noise

__all__ = [
    "CARD",
    "WEIGHTS",
    "PREPROCESSING",
    "ModelCard",
    "ModelPackage",
    "preprocess",
    "preprocess_array",
    "preprocess_pixels",
    "stamp_noise",
    "stamp_noise_array",
    "builtin_models",
    "load_package",
    "save_package",
    "init_package",
    "export_rubin",
    "import_rubin",
]

CARD = "card.json"
WEIGHTS = "weights.safetensors"
FORMAT_VERSION = 1
#: Named pixel preprocessing a card may declare; the Scorer applies it.
#: "none": raw pixels (Rubin's production convention). "asinh": asinh(x / s_c), with s_c the
#: card's per-channel `preprocessing_scale` (the training stamps' robust noise, in pixel units).
#: "asinh-noise": asinh(x / (s_c * sigma)), sigma the stamp's own difference noise
#: (`stamp_noise`) and s_c dimensionless (each channel's noise over the difference's, in the
#: training set): stamps in units of their noise, so the model does not depend on depth or units.
PREPROCESSING = ("none", "asinh", "asinh-noise")
#: `stamp_noise` reads every NOISE_STEP-th pixel of the difference along each axis.
NOISE_STEP = 2
NOISE_FLOOR = (
    1e-20  # keeps x / sigma finite in float32 for |x| < 3e18 when a difference has no valid pixel
)
_MAX_CARD_BYTES = 1 << 20
_MAX_WEIGHTS_BYTES = 256 << 20
_BUILTIN_ROOT = "models"


class ModelCard(BaseModel):
    """The metadata of a model package (`card.json`); validated on load and save."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    parent: str | None = None
    architecture: str
    stamp_size: int = Field(ge=36, le=512)
    channels: list[str] = Field(default_factory=lambda: list(CHANNELS))
    preprocessing: str = "none"
    preprocessing_scale: list[float] | None = None
    pixel_units: str | None = None
    cutoff: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Observing-condition correction of the network's scores (`realbogus.conditions`), if any.
    conditions: ConditionCorrection | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            msg = f"unknown card format_version {value}; this realbogus reads {FORMAT_VERSION}"
            raise ValueError(msg)
        return value

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            msg = f"unknown architecture {value!r}; registered: {sorted(ARCHITECTURES)}"
            raise ValueError(msg)
        return value

    @field_validator("channels")
    @classmethod
    def _channel_order(cls, value: list[str]) -> list[str]:
        if list(value) != list(CHANNELS):
            msg = f"channels must be {list(CHANNELS)} in that order; got {value}"
            raise ValueError(msg)
        return value

    @field_validator("preprocessing")
    @classmethod
    def _known_preprocessing(cls, value: str) -> str:
        if value not in PREPROCESSING:
            msg = f"unknown preprocessing {value!r}; known: {list(PREPROCESSING)}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _scale_fits_preprocessing(self) -> ModelCard:
        scale = self.preprocessing_scale
        if self.preprocessing != "none":
            if (
                scale is None
                or len(scale) != len(self.channels)
                or not all(math.isfinite(v) and v > 0 for v in scale)
            ):
                msg = f"preprocessing {self.preprocessing!r} needs preprocessing_scale: {len(self.channels)} positive numbers; got {scale}"
                raise ValueError(msg)
        elif scale is not None:
            msg = "preprocessing_scale is not used by preprocessing 'none'"
            raise ValueError(msg)
        return self


def stamp_noise(x: torch.Tensor) -> torch.Tensor:
    """Robust noise of each stamp's difference plane: 1.4826 x median |d| over its non-zero
    pixels (every `NOISE_STEP`-th along each axis; zeros are invalid or padded pixels).

    (N, C, S, S) -> (N,), in pixel units; `NOISE_FLOOR` when the plane has no valid pixel.
    The difference has median ~0, so median |d| is its median absolute deviation.
    """
    d = x[:, 0, ::NOISE_STEP, ::NOISE_STEP].abs().flatten(1)
    n = d.shape[1]
    zeros = (d == 0).sum(dim=1, keepdim=True)
    middle = torch.clamp(zeros + (n - zeros) // 2, max=n - 1)
    median = torch.sort(d, dim=1).values.gather(1, middle).squeeze(1)
    return torch.clamp(1.4826 * median, min=NOISE_FLOOR)


def stamp_noise_array(x: np.ndarray) -> np.ndarray:
    """`stamp_noise` in numpy, equal to it value for value: (N, C, S, S) -> (N,), float32.

    A selection (`np.partition`) instead of a sort: ~1.5 us per 63-px stamp, against ~100 us for
    ONNX Runtime's TopK, so the Scorer computes it here and hands it to the ONNX graph.
    """
    noise, _ = robust_noise(x[:, 0], NOISE_STEP)
    return np.maximum(noise, np.float32(NOISE_FLOOR))


def preprocess(card: ModelCard, x: torch.Tensor) -> torch.Tensor:
    """The card's pixel preprocessing applied to stamps (N, C, S, S) in pixel units."""
    if card.preprocessing == "none":
        return x
    scale = torch.tensor(card.preprocessing_scale, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    if card.preprocessing == "asinh-noise":
        scale = scale * stamp_noise(x).view(-1, 1, 1, 1)
    return torch.asinh(x / scale)


def preprocess_array(card: ModelCard, x: np.ndarray) -> np.ndarray:
    """`preprocess` in numpy: (N, C, S, S) float32 in pixel units -> a new float32 array.

    numpy's SIMD arcsinh takes ~5 us per 63-px stamp where ONNX Runtime's scalar Asinh takes
    ~200 us, so the Scorer preprocesses here and feeds the graph what it returns.
    """
    return preprocess_pixels(x, card.preprocessing, card.preprocessing_scale)


def preprocess_pixels(x: np.ndarray, preprocessing: str, scale) -> np.ndarray:
    """A preprocessing (`PREPROCESSING`) with its per-channel `scale` (C,) on stamps (N, C, S, S):
    a new float32 array. What `preprocess_array` applies for a card and training for a new model."""
    if preprocessing == "none":
        return np.array(x, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32).reshape(1, -1, 1, 1)
    if preprocessing == "asinh-noise":
        scale = scale * stamp_noise_array(x).reshape(-1, 1, 1, 1)
    out = np.divide(x, scale, dtype=np.float32)
    return np.arcsinh(out, out=out)


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
    if size > _MAX_WEIGHTS_BYTES:
        msg = f"{where}: weights file is {size} bytes, over the {_MAX_WEIGHTS_BYTES}-byte limit"
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
            limit = {CARD: _MAX_CARD_BYTES, WEIGHTS: _MAX_WEIGHTS_BYTES}
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
        msg = f"{path} already exists; choose another path or pass overwrite=True"
        raise PackageError(msg)
    reference = build_model(card.architecture, card.stamp_size, len(card.channels)).state_dict()
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    if set(state) != set(reference) or any(state[k].shape != reference[k].shape for k in reference):
        msg = f"model does not match card architecture {card.architecture!r} at stamp_size {card.stamp_size}"
        raise PackageError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file(state, str(tmp / WEIGHTS), metadata={"realbogus_version": card.version})
        (tmp / CARD).write_text(json.dumps(card.model_dump(), indent=2) + "\n")
        _load_directory(tmp)  # never publish a package that does not load back
        if path.suffix.lower() == ".zip":
            staged = tmp.with_suffix(".zip.tmp")
            with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name in (CARD, WEIGHTS):
                    archive.write(tmp / name, name)
            os.replace(staged, path)
            shutil.rmtree(tmp)
        else:
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def init_package(
    path: str | os.PathLike,
    *,
    stamp_size: int = 51,
    seed: int = 0,
    name: str = "untrained",
    version: str = "untrained",
    overwrite: bool = False,
) -> Path:
    """Write a randomly initialised (untrained) package: for tests and as a training start."""
    torch.manual_seed(seed)
    model = build_model("dmtn337-cnn", stamp_size)
    card = ModelCard(
        name=name,
        version=version,
        architecture="dmtn337-cnn",
        stamp_size=stamp_size,
        description=f"randomly initialised with torch seed {seed}; not trained",
        hyperparameters={"init_seed": seed},
    )
    return save_package(path, model, card, overwrite=overwrite)


# --- Rubin meas_transiNet interchange -------------------------------------------------------

_RUBIN_ARCH = '''"""DMTN-337 reliability CNN, exported by realbogus {version} for lsst/meas_transiNet."""
import torch
from torch import nn

__all__ = ["DMTN337CNN"]
{noise_function}

class DMTN337CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d({channels}, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=5)
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout1 = nn.Dropout({dropout})
        self.dropout2 = nn.Dropout({dropout})
        self.dropout3 = nn.Dropout({dropout})
        self.fc1 = nn.Linear({flat}, 32)
        self.fc2 = nn.Linear(32, 1){preprocessing_init}

    def forward(self, x):{preprocessing_forward}
        x = self.dropout1(self.pool(torch.relu(self.conv1(x))))
        x = self.dropout2(self.pool(torch.relu(self.conv2(x))))
        x = self.dropout3(self.pool(torch.relu(self.conv3(x))))
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return torch.sigmoid(self.fc2(x)).squeeze(1)
'''


_RUBIN_SCALE = "preprocessing_scale"  # buffer of exported 'asinh' networks
_RUBIN_NOISE_SCALE = "noise_scale"  # buffer of exported 'asinh-noise' networks


def _rubin_files(package: ModelPackage) -> dict[str, bytes]:
    card = package.card
    if card.conditions is not None:
        msg = (
            f"{card.version} corrects its network's scores for observing conditions, which Rubin's "
            f"layout cannot carry; export its parent ({card.parent or 'the uncorrected model'}) instead"
        )
        raise PackageError(msg)
    state = {k: v.detach().cpu() for k, v in package.model.state_dict().items()}
    # Rubin feeds raw pixels: the exported network applies the card's preprocessing.
    buffer_name = {"asinh": _RUBIN_SCALE, "asinh-noise": _RUBIN_NOISE_SCALE}.get(card.preprocessing)
    init = forward = noise_function = ""
    if buffer_name is not None:
        state[buffer_name] = torch.tensor(card.preprocessing_scale, dtype=torch.float32).view(
            1, -1, 1, 1
        )
        init = (
            f"\n        # realbogus preprocessing {card.preprocessing!r}\n"
            f"        self.register_buffer('{buffer_name}', torch.ones(1, {len(card.channels)}, 1, 1))"
        )
        forward = f"\n        x = torch.asinh(x / self.{buffer_name})"
    if card.preprocessing == "asinh-noise":
        # The exported file is self-contained: our own stamp_noise, with its constants.
        noise_function = f"\n\nNOISE_STEP = {NOISE_STEP}\nNOISE_FLOOR = {NOISE_FLOOR}\n\n\n{inspect.getsource(stamp_noise)}"
        forward = f"\n        x = torch.asinh(x / (self.{buffer_name} * stamp_noise(x).view(-1, 1, 1, 1)))"
    buffer = io.BytesIO()
    torch.save({"model_state_dict": state}, buffer)
    meta = {
        "version": card.version,
        "description": card.description or f"{card.name} {card.version} (realbogus)",
        "input_shape": [card.stamp_size, card.stamp_size, len(card.channels)],
        "input_scale_factor": [1.0] * len(card.channels),
    }
    arch = _RUBIN_ARCH.format(
        version=card.version,
        channels=len(card.channels),
        dropout=package.model.dropout1.p,
        flat=package.model.fc1.in_features,
        noise_function=noise_function,
        preprocessing_init=init,
        preprocessing_forward=forward,
    )
    return {
        "checkpoint": buffer.getvalue(),
        "metadata": yaml.safe_dump(meta, sort_keys=False).encode(),
        "architecture": arch.encode(),
    }


def export_rubin(package: ModelPackage, out: str | os.PathLike) -> Path:
    """Export to Rubin's layout: a directory (`arch.py`, `checkpoint.pt`, `meta.yaml`), or, for an
    `out` ending in .zip, the Butler payload zip (members checkpoint, architecture, metadata)."""
    out = Path(out)
    files = _rubin_files(package)
    if out.suffix.lower() == ".zip":
        from .tables import atomic_path

        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return out
    out.mkdir(parents=True, exist_ok=True)
    names = {"checkpoint": "checkpoint.pt", "metadata": "meta.yaml", "architecture": "arch.py"}
    for key, data in files.items():
        target = out / names[key]
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return out


def _read_rubin(path: Path) -> tuple[bytes, bytes, str]:
    """(checkpoint bytes, meta.yaml bytes, where) from a Rubin package directory or zip."""
    if path.is_dir():
        checkpoints = sorted(path.glob("*.pt")) + sorted(path.glob("*.pth"))
        metas = sorted(path.glob("meta*.yaml"))
        if len(checkpoints) != 1 or len(metas) != 1:
            msg = f"{path}: a Rubin package needs exactly one *.pt and one meta*.yaml; found {[p.name for p in checkpoints + metas]}"
            raise PackageError(msg)
        for file in (checkpoints[0], metas[0]):
            if file.stat().st_size > _MAX_WEIGHTS_BYTES:
                msg = f"{file}: over the {_MAX_WEIGHTS_BYTES}-byte limit"
                raise PackageError(msg)
        return checkpoints[0].read_bytes(), metas[0].read_bytes(), str(checkpoints[0])
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {i.filename: i for i in archive.infolist()}
            if not {"checkpoint", "metadata"} <= set(infos):
                msg = f"{path}: a Rubin payload zip needs members checkpoint and metadata; has {sorted(infos)}"
                raise PackageError(msg)
            for name in ("checkpoint", "metadata"):
                if infos[name].file_size > _MAX_WEIGHTS_BYTES:
                    msg = f"{path}: member {name} is over the {_MAX_WEIGHTS_BYTES}-byte limit"
                    raise PackageError(msg)
            return archive.read("checkpoint"), archive.read("metadata"), f"{path}:checkpoint"
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"{path}: not a Rubin package directory or payload zip ({exc})"
        raise PackageError(msg) from exc


def import_rubin(
    rubin: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    cutoff: float = 0.5,
    overwrite: bool = False,
) -> Path:
    """Import a Rubin `meas_transiNet` package into a realbogus package at `out`.

    The checkpoint is read with ``torch.load(weights_only=True)``; the architecture file is
    never executed: the state dict must fit the DMTN-337 CNN exactly.
    """
    rubin = Path(rubin)
    if not rubin.exists():
        msg = f"{rubin}: no such Rubin package"
        raise PackageError(msg)
    checkpoint_bytes, meta_bytes, where = _read_rubin(rubin)
    try:
        meta = yaml.safe_load(meta_bytes)
    except yaml.YAMLError as exc:
        msg = f"{rubin}: meta.yaml is not valid YAML ({exc})"
        raise PackageError(msg) from exc
    required = ("version", "description", "input_shape", "input_scale_factor")
    if not isinstance(meta, dict) or any(k not in meta for k in required):
        msg = f"{rubin}: meta.yaml needs keys {list(required)}"
        raise PackageError(msg)
    shape = meta["input_shape"]
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and shape[0] == shape[1]
        and shape[2] == len(CHANNELS)
    ):
        msg = f"{rubin}: input_shape must be [S, S, {len(CHANNELS)}] (height, width, channels); got {shape}"
        raise PackageError(msg)
    try:
        checkpoint = torch.load(io.BytesIO(checkpoint_bytes), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        msg = f"{where}: not a weights-only PyTorch checkpoint ({type(exc).__name__}: {exc})"
        raise PackageError(msg) from exc
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        msg = f"{where}: checkpoint has no 'model_state_dict'"
        raise PackageError(msg)
    model = build_model("dmtn337-cnn", int(shape[0]))
    state = dict(checkpoint["model_state_dict"])
    # A network we exported with preprocessing 'asinh' or 'asinh-noise' carries its scale.
    asinh_scale, noise_scale = state.pop(_RUBIN_SCALE, None), state.pop(_RUBIN_NOISE_SCALE, None)
    preprocessing, scale_buffer = "none", None
    if asinh_scale is not None or noise_scale is not None:
        preprocessing = "asinh" if noise_scale is None else "asinh-noise"
        scale_buffer = [
            float(v)
            for v in torch.as_tensor(asinh_scale if noise_scale is None else noise_scale).flatten()
        ]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        msg = f"{where}: state dict does not fit the DMTN-337 CNN at {shape[0]} px ({exc})"
        raise PackageError(msg) from exc
    scale = [float(s) for s in meta["input_scale_factor"]]
    card = ModelCard(
        name=name or f"rubin-{meta['version']}",
        version=str(meta["version"]),
        architecture="dmtn337-cnn",
        stamp_size=int(shape[0]),
        # Rubin's interface ignores input_scale_factor; so do we.
        preprocessing=preprocessing,
        preprocessing_scale=scale_buffer,
        description=str(meta["description"]),
        cutoff=cutoff,
        hyperparameters={"rubin_input_scale_factor": scale},
        training_data={"imported_from": str(rubin)},
    )
    return save_package(out, model, card, overwrite=overwrite)
