"""The model card (`card.json`): everything besides the weights that decides a package's scores.

Validated on load and save (pydantic, unknown keys refused): the architecture and preprocessing
must be registered (`realbogus.model.architectures`, `realbogus.model.transforms`), the channel
order is [difference, science, template], and a scaled transform needs one positive scale per
channel.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..stamps import CHANNELS
from .architectures import ARCHITECTURES
from .conditions import ConditionCorrection
from .transforms import TRANSFORMS

__all__ = ["CARD", "FORMAT_VERSION", "ModelCard", "survey_family"]

CARD = "card.json"
FORMAT_VERSION = 1
#: Card names that, on cards written before `survey` existed, name the survey (the built-ins).
_SURVEY_NAMES = ("rubin", "ztf")


def survey_family(name: str | None) -> str | None:
    """The survey a simulation preset or alert stream belongs to: "rubin" for "rubin" and
    "rubin-small" (any "rubin-..."), likewise "ztf"; other names as given; None stays None."""
    if name is None:
        return None
    for survey in _SURVEY_NAMES:
        if name == survey or name.startswith(f"{survey}-"):
            return survey
    return name


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
    #: The survey whose data the model was trained for ("rubin", "ztf", ...); None: not stated.
    survey: str | None = None
    cutoff: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Observing-condition correction of the network's scores (`realbogus.model.conditions`), if any.
    conditions: ConditionCorrection | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    #: The realbogus version that wrote this card (None on cards written before 0.2.0).
    code_version: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def model_survey(self) -> str | None:
        """The survey the model is for: `survey`, else (cards written before it existed) the
        card's `name` when that is a survey's name (the built-in packages), else None."""
        if self.survey is not None:
            return survey_family(self.survey)
        return self.name if self.name in _SURVEY_NAMES else None

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
        if value not in TRANSFORMS:
            msg = f"unknown preprocessing {value!r}; known: {sorted(TRANSFORMS)}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _scale_fits_preprocessing(self) -> ModelCard:
        scale = self.preprocessing_scale
        if TRANSFORMS[self.preprocessing].scaled:
            if (
                scale is None
                or len(scale) != len(self.channels)
                or not all(math.isfinite(v) and v > 0 for v in scale)
            ):
                msg = f"preprocessing {self.preprocessing!r} needs preprocessing_scale: {len(self.channels)} positive numbers; got {scale}"
                raise ValueError(msg)
        elif scale is not None:
            msg = f"preprocessing_scale is not used by preprocessing {self.preprocessing!r}"
            raise ValueError(msg)
        return self
