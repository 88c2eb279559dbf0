"""Rubin `meas_transiNet` package interchange: export our packages to Rubin's layout and import back.

Rubin's layout is a checkpoint `*.pt` holding `model_state_dict`, a `meta.yaml` and an `arch*.py`
(or the Butler payload zip with members `checkpoint`, `architecture`, `metadata`). Export writes
the network's source from its architecture's layers (`architectures.torch_source`) and, since
Rubin's interface feeds raw pixels, the card's transform inside the network. Import reads the
checkpoint with `torch.load(weights_only=True)` and never runs the architecture file.

Rubin's `meta.yaml` cannot hold our card (survey, pixel units, cutoff, parent, metrics), so export
also writes `REALBOGUS_CARD` beside Rubin's files (a zip member of that name in a payload zip):
our card and the sha256 of the checkpoint it belongs to. Import reads it back and keeps every
field, or refuses when the checkpoint changed since. An imported model never reuses the version
it was exported as: it gets `--version`, by default the original's plus `IMPORT_SUFFIX`, and its
parent is the original.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import torch
import yaml

from ..errors import ConfigError, PackageError
from ..io.atomic import atomic_directory, atomic_path
from ..stamps import CHANNELS
from .architectures import ARCHITECTURES, Architecture, get_architecture, torch_source
from .card import ModelCard
from .network import build_network
from .package import MAX_WEIGHTS_BYTES, ModelPackage, save_package
from .transforms import TRANSFORMS, get_transform

__all__ = ["IMPORT_SUFFIX", "REALBOGUS_CARD", "export_rubin", "import_rubin", "rubin_files"]

#: Our card, written beside Rubin's files (and as a payload zip member of that name).
REALBOGUS_CARD = "realbogus-card.json"
#: Appended to the original version of an imported model (unless a version is given).
IMPORT_SUFFIX = "-import"

_FILE_NAMES = {
    "checkpoint": "checkpoint.pt",
    "metadata": "meta.yaml",
    "architecture": "arch.py",
    "card": REALBOGUS_CARD,
}


def _arch_source(package: ModelPackage) -> str:
    """The self-contained `arch.py` of a package: its network and its transform, in torch."""
    card = package.card
    architecture = get_architecture(card.architecture)
    transform = get_transform(card.preprocessing)
    init, forward = torch_source(architecture, card.stamp_size, len(card.channels))
    if transform.rubin_buffer is not None:
        init += [
            f"# realbogus preprocessing {card.preprocessing!r}",
            f"self.register_buffer({transform.rubin_buffer!r}, torch.ones(1, {len(card.channels)}, 1, 1))",
        ]
    forward = transform.rubin_forward() + forward + ["return torch.sigmoid(x).squeeze(1)"]
    helpers = transform.rubin_helpers()
    lines = [
        f'"""{architecture.id} reliability network, exported by realbogus for lsst/meas_transiNet',
        f'({card.name} {card.version}; input (N, {len(card.channels)}, {card.stamp_size}, {card.stamp_size}) raw pixels)."""',
        "import torch",
        "from torch import nn",
        "",
        f"__all__ = [{architecture.class_name!r}]",
        *(["", "", helpers.rstrip()] if helpers else []),
        "",
        "",
        f"class {architecture.class_name}(nn.Module):",
        "    def __init__(self):",
        "        super().__init__()",
        *(f"        {line}" for line in init),
        "",
        "    def forward(self, x):",
        *(f"        {line}" for line in forward),
    ]
    return "\n".join(lines) + "\n"


def rubin_files(package: ModelPackage) -> dict[str, bytes]:
    """The three members of Rubin's layout and our card: {"checkpoint", "metadata",
    "architecture", "card"} -> bytes."""
    card = package.card
    if card.conditions is not None:
        msg = (
            f"{card.version} corrects its network's scores for observing conditions, which Rubin's "
            f"layout cannot carry; export its parent ({card.parent or 'the uncorrected model'}) instead"
        )
        raise PackageError(msg)
    state = {k: v.detach().cpu() for k, v in package.model.state_dict().items()}
    transform = get_transform(card.preprocessing)
    if transform.rubin_buffer is not None:
        state[transform.rubin_buffer] = torch.tensor(
            card.preprocessing_scale, dtype=torch.float32
        ).view(1, -1, 1, 1)
    buffer = io.BytesIO()
    torch.save({"model_state_dict": state}, buffer)
    meta = {
        "version": card.version,
        "description": card.description or f"{card.name} {card.version} (realbogus)",
        "input_shape": [card.stamp_size, card.stamp_size, len(card.channels)],
        "input_scale_factor": [1.0] * len(card.channels),
    }
    checkpoint = buffer.getvalue()
    ours = {
        "format": "realbogus card beside a Rubin meas_transiNet package",
        "checkpoint_sha256": hashlib.sha256(checkpoint).hexdigest(),
        "card": json.loads(card.model_dump_json()),
    }
    return {
        "checkpoint": checkpoint,
        "metadata": yaml.safe_dump(meta, sort_keys=False).encode(),
        "architecture": _arch_source(package).encode(),
        "card": (json.dumps(ours, indent=2, allow_nan=False) + "\n").encode(),
    }


def export_rubin(package: ModelPackage, out: str | os.PathLike) -> Path:
    """Export to Rubin's layout: a directory (`arch.py`, `checkpoint.pt`, `meta.yaml`), or, for an
    `out` ending in .zip, the Butler payload zip (members checkpoint, architecture, metadata);
    with our card beside them (`REALBOGUS_CARD`)."""
    out = Path(out)
    files = rubin_files(package)
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
            for name, data in files.items():
                archive.writestr(REALBOGUS_CARD if name == "card" else name, data)
        return out
    with atomic_directory(out) as tmp:
        for key, data in files.items():
            (tmp / _FILE_NAMES[key]).write_bytes(data)
    return out


def _matching_architecture(state: dict, size: int, where: str) -> Architecture:
    """The one registered architecture whose state dict at `size` px has `state`'s keys and shapes."""
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    fits = []
    for architecture in ARCHITECTURES.values():
        try:
            reference = architecture.parameter_shapes(size, len(CHANNELS))
        except ConfigError:  # too small a stamp for this architecture's layers
            continue
        if shapes == reference:
            fits.append(architecture)
    if len(fits) != 1:
        found = "none" if not fits else f"several: {[a.id for a in fits]}"
        msg = (
            f"{where}: the state dict does not fit exactly one registered architecture at {size} px "
            f"(it fits {found}; registered {sorted(ARCHITECTURES)}; keys {sorted(shapes)[:6]}...)"
        )
        raise PackageError(msg)
    return fits[0]


def _read_rubin(path: Path) -> tuple[bytes, bytes, str, bytes | None]:
    """(checkpoint bytes, meta.yaml bytes, where, our card's bytes or None) from a Rubin package
    directory or zip."""
    if path.is_dir():
        checkpoints = sorted(path.glob("*.pt")) + sorted(path.glob("*.pth"))
        metas = sorted(path.glob("meta*.yaml"))
        if len(checkpoints) != 1 or len(metas) != 1:
            msg = f"{path}: a Rubin package needs exactly one *.pt and one meta*.yaml; found {[p.name for p in checkpoints + metas]}"
            raise PackageError(msg)
        for file in (checkpoints[0], metas[0]):
            if file.stat().st_size > MAX_WEIGHTS_BYTES:
                msg = f"{file}: over the {MAX_WEIGHTS_BYTES}-byte limit"
                raise PackageError(msg)
        ours = path / REALBOGUS_CARD
        card = ours.read_bytes() if ours.is_file() else None
        return checkpoints[0].read_bytes(), metas[0].read_bytes(), str(checkpoints[0]), card
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {i.filename: i for i in archive.infolist()}
            if not {"checkpoint", "metadata"} <= set(infos):
                msg = f"{path}: a Rubin payload zip needs members checkpoint and metadata; has {sorted(infos)}"
                raise PackageError(msg)
            for name in ("checkpoint", "metadata"):
                if infos[name].file_size > MAX_WEIGHTS_BYTES:
                    msg = f"{path}: member {name} is over the {MAX_WEIGHTS_BYTES}-byte limit"
                    raise PackageError(msg)
            card = archive.read(REALBOGUS_CARD) if REALBOGUS_CARD in infos else None
            return (
                archive.read("checkpoint"),
                archive.read("metadata"),
                f"{path}:checkpoint",
                card,
            )
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"{path}: not a Rubin package directory or payload zip ({exc})"
        raise PackageError(msg) from exc


def import_rubin(
    rubin: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    version: str | None = None,
    cutoff: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Import a Rubin `meas_transiNet` package into a realbogus package at `out`.

    The checkpoint is read with ``torch.load(weights_only=True)``; the architecture file is
    never executed: the state dict must fit exactly one registered architecture at the stamp
    size of `meta.yaml` (`input_shape`), and a scale buffer of an exported network names its
    transform (`Transform.rubin_buffer`).

    A package we exported carries `REALBOGUS_CARD`: its card is kept whole (survey, pixel units,
    cutoff, metrics), or the import is refused when the checkpoint changed since the export.
    `version` defaults to the original version plus `IMPORT_SUFFIX` and may not equal it; the
    original becomes the parent. `cutoff` defaults to the card's (0.5 without one).
    """
    rubin = Path(rubin)
    if not rubin.exists():
        msg = f"{rubin}: no such Rubin package"
        raise PackageError(msg)
    checkpoint_bytes, meta_bytes, where, ours_bytes = _read_rubin(rubin)
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
    state = dict(checkpoint["model_state_dict"])
    preprocessing, scale_buffer = "none", None
    for transform in TRANSFORMS.values():  # an exported network carries its transform's scale
        if transform.rubin_buffer is not None and transform.rubin_buffer in state:
            preprocessing = transform.id
            scale_buffer = [
                float(v) for v in torch.as_tensor(state.pop(transform.rubin_buffer)).flatten()
            ]
    size = int(shape[0])
    architecture = _matching_architecture(state, size, where)
    model = build_network(architecture, size, len(CHANNELS))
    model.load_state_dict(state, strict=True)
    scale = [float(s) for s in meta["input_scale_factor"]]
    original = str(meta["version"])
    ours = _our_card(ours_bytes, checkpoint_bytes, rubin) if ours_bytes is not None else None
    if ours is not None:
        original = ours.version
    version = version or f"{original}{IMPORT_SUFFIX}"
    if version == original:
        msg = (
            f"{rubin}: an imported model may not reuse the version {original!r} it was exported "
            "as; give another --version"
        )
        raise PackageError(msg)
    if ours is not None:
        derived = {
            "architecture": architecture.id,
            "stamp_size": size,
            "preprocessing": preprocessing,
        }
        for key, value in derived.items():
            if getattr(ours, key) != value:
                msg = (
                    f"{rubin}: {REALBOGUS_CARD} says {key} {getattr(ours, key)!r} but the "
                    f"checkpoint and meta.yaml give {value!r}; remove {REALBOGUS_CARD} to import "
                    "the Rubin files alone"
                )
                raise PackageError(msg)
        card = ours.model_copy(
            update={
                "name": name or ours.name,
                "version": version,
                "parent": original,
                "preprocessing_scale": scale_buffer,
                "cutoff": ours.cutoff if cutoff is None else cutoff,
                "training_data": {**ours.training_data, "imported_from": str(rubin)},
            }
        )
        card = ModelCard.model_validate(card.model_dump())
    else:
        card = ModelCard(
            name=name or f"rubin-{original}",
            version=version,
            parent=original,
            architecture=architecture.id,
            stamp_size=size,
            # Rubin's interface ignores input_scale_factor; so do we.
            preprocessing=preprocessing,
            preprocessing_scale=scale_buffer,
            description=str(meta["description"]),
            cutoff=0.5 if cutoff is None else cutoff,
            hyperparameters={"rubin_input_scale_factor": scale},
            training_data={"imported_from": str(rubin)},
        )
    return save_package(out, model, card, overwrite=overwrite)


def _our_card(data: bytes, checkpoint: bytes, rubin: Path) -> ModelCard:
    """The card of `REALBOGUS_CARD`, checked against the checkpoint it was written with."""
    try:
        ours = json.loads(data)
        card = ModelCard.model_validate(ours["card"])
        digest = str(ours["checkpoint_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"{rubin}: {REALBOGUS_CARD} is not a valid realbogus card ({exc})"
        raise PackageError(msg) from exc
    if hashlib.sha256(checkpoint).hexdigest() != digest:
        msg = (
            f"{rubin}: the checkpoint has changed since {card.version} was exported with "
            f"{REALBOGUS_CARD}, so its card no longer describes it; remove {REALBOGUS_CARD} to "
            "import it as a new model (give --version and --cutoff)"
        )
        raise PackageError(msg)
    return card
