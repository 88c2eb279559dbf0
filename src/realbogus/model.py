"""The DMTN-337 reliability CNN, exactly as the note describes it (section 2).

Input (N, 3, S, S) float32 stamps in the order [difference, science, template]; output (N,)
reliabilities in [0, 1] from an in-model sigmoid, as Rubin's production interface expects.
Layer names (`conv1`...`fc2`) follow the tac_cnn lineage so state dicts move between the two.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["ARCHITECTURES", "DMTN337CNN", "build_model", "count_parameters"]

_KERNEL = 5
_POOL = 2


def _side_after_layers(stamp_size: int) -> int:
    """Spatial side after the three valid-conv + pool blocks."""
    side = stamp_size
    for _ in range(3):
        side = (side - _KERNEL + 1) // _POOL
    return side


class DMTN337CNN(nn.Module):
    """Three valid 5x5 conv blocks (16/32/64 filters, maxpool 2, dropout 0.4) and 256 -> 32 -> 1.

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
        super().__init__()
        side = _side_after_layers(stamp_size)
        if side < 1:
            msg = f"stamp_size must be at least 36 pixels for three conv blocks; got {stamp_size}"
            raise ConfigError(msg)
        self.stamp_size = stamp_size
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, 16, kernel_size=_KERNEL)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=_KERNEL)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=_KERNEL)
        self.pool = nn.MaxPool2d(_POOL, _POOL)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(64 * side * side, 32)
        self.fc2 = nn.Linear(32, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores, shape (N,), for training with a numerically stable loss."""
        x = self.dropout1(self.pool(torch.relu(self.conv1(x))))
        x = self.dropout2(self.pool(torch.relu(self.conv2(x))))
        x = self.dropout3(self.pool(torch.relu(self.conv3(x))))
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reliabilities in [0, 1], shape (N,), for stamps of shape (N, channels, S, S)."""
        return torch.sigmoid(self.logits(x))


#: Registered architecture ids -> constructors taking (stamp_size, channels).
ARCHITECTURES = {"dmtn337-cnn": DMTN337CNN}


def build_model(architecture: str, stamp_size: int, channels: int = 3) -> nn.Module:
    """Build a registered architecture; an unknown id lists the valid ones."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        msg = f"unknown architecture {architecture!r}; registered: {sorted(ARCHITECTURES)}"
        raise ConfigError(msg) from None
    return cls(stamp_size=stamp_size, channels=channels)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
