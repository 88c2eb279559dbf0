"""Simulated difference-imaging surveys that yield labelled detections (no torch here).

`simulate_survey` renders fields (a deep template and many epochs with varying PSF) with GalSim,
injects Real sources and Bogus artifacts, subtracts (Alard-Lupton + decorrelation, or ZOGY),
detects on both polarities, measures, labels by truth matching and writes a stamp dataset.
"""

from .config import PRESETS, SimConfig, load_config, preset, register_preset
from .field import TABLE_COLUMNS, VisitResult, simulate_field
from .labels import BOGUS_KINDS, ORIGINS, REAL_KINDS
from .survey import plan_fields, simulate_survey, survey_summary

__all__ = [
    "PRESETS",
    "register_preset",
    "SimConfig",
    "load_config",
    "preset",
    "TABLE_COLUMNS",
    "VisitResult",
    "simulate_field",
    "BOGUS_KINDS",
    "ORIGINS",
    "REAL_KINDS",
    "plan_fields",
    "simulate_survey",
    "survey_summary",
]
