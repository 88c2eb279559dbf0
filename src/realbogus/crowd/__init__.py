"""Crowd labels: Zooniverse Panoptes exports, SWAP and baselines, simulated volunteers, label sets.

No torch here. SWAP, majority vote and Dawid-Skene are reached through `aggregate(...,
method=...)` (the `realbogus.crowd.swap` module keeps SWAP itself). The flow: `read_classifications` (an export) -> `aggregate` (swap | majority |
dawid-skene) -> `CrowdLabels` -> `training_dataset` (a balanced realbogus dataset).
"""

from .aggregate import aggregate, aggregator_names, get_aggregator, register_aggregator
from .baselines import dawid_skene, majority_vote
from .core import CrowdLabels, PreparedVotes, as_gold, prepare_votes, read_labels, skill_bits
from .swap import SwapConfig

__all__ = [
    "aggregate",
    "aggregator_names",
    "get_aggregator",
    "register_aggregator",
    "dawid_skene",
    "majority_vote",
    "CrowdLabels",
    "PreparedVotes",
    "as_gold",
    "prepare_votes",
    "read_labels",
    "skill_bits",
    "SwapConfig",
]
