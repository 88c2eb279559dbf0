"""The gate a reduced precision (bf16, int8) must pass before it scores anything.

A reduced precision is accepted for a package only when, on check stamps from the data to be
scored, its reliabilities stay within `MAX_DEVIATION` of fp32's and it changes `passes_cutoff`
(reliability >= the card's cutoff) for fewer than `MAX_FLIP_RATE` of them (issue 21). Otherwise
the Scorer falls back to fp32 and says why (`PrecisionCheck.reason`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["MAX_DEVIATION", "MAX_FLIP_RATE", "PRECISIONS", "PrecisionCheck", "check_precision"]

#: Precisions the Scorer knows; fp32 is the default (bit-reproducible re-scoring).
PRECISIONS = ("fp32", "bf16", "int8")
#: Largest accepted |reduced - fp32| reliability on the check stamps.
MAX_DEVIATION = 0.01
#: Largest accepted fraction of check stamps whose `passes_cutoff` changes (strictly below).
MAX_FLIP_RATE = 0.001


@dataclass(frozen=True)
class PrecisionCheck:
    """The outcome of one precision's check against fp32.

    Attributes
    ----------
    precision : str
        The precision checked ('bf16' or 'int8').
    accepted : bool
        Whether it passed both limits.
    max_deviation : float
        Largest |reduced - fp32| reliability over the check stamps.
    flip_rate : float
        Fraction of check stamps whose `passes_cutoff` differs from fp32's.
    n_check : int
        Number of check stamps.
    tolerance, max_flip_rate : float
        The limits it was checked under.
    """

    precision: str
    accepted: bool
    max_deviation: float
    flip_rate: float
    n_check: int
    tolerance: float = MAX_DEVIATION
    max_flip_rate: float = MAX_FLIP_RATE

    @property
    def reason(self) -> str:
        """One line: what was measured and what follows from it."""
        measured = (
            f"max |{self.precision} - fp32| {self.max_deviation:.4f} (limit {self.tolerance:g}), "
            f"passes_cutoff changed for {100 * self.flip_rate:.2f} % (limit < "
            f"{100 * self.max_flip_rate:g} %) of {self.n_check} check stamps"
        )
        if self.accepted:
            return f"{self.precision} accepted: {measured}"
        return f"{self.precision} refused, scoring in fp32: {measured}"


def check_precision(
    precision: str,
    fp32: np.ndarray,
    reduced: np.ndarray,
    cutoff: float,
    *,
    tolerance: float = MAX_DEVIATION,
    max_flip_rate: float = MAX_FLIP_RATE,
) -> PrecisionCheck:
    """Compare a reduced precision's reliabilities with fp32's on the same check stamps.

    Parameters
    ----------
    precision : str
        The reduced precision's name, for the record.
    fp32, reduced : ndarray of shape (N,), float
        Reliabilities of the same N >= 1 check stamps, in the same order.
    cutoff : float
        The card's cutoff: a stamp passes when its reliability >= cutoff.
    tolerance, max_flip_rate : float
        The limits (defaults: issue 21's 0.01 and 0.1 %).

    Returns
    -------
    PrecisionCheck
    """
    fp32 = np.asarray(fp32, dtype=np.float64)
    reduced = np.asarray(reduced, dtype=np.float64)
    if fp32.shape != reduced.shape or fp32.ndim != 1 or len(fp32) == 0:
        msg = f"check scores must be two equal non-empty 1-d arrays; got {fp32.shape} and {reduced.shape}"
        raise ConfigError(msg)
    deviation = float(np.max(np.abs(reduced - fp32)))
    flips = float(np.mean((reduced >= cutoff) != (fp32 >= cutoff)))
    accepted = bool(deviation <= tolerance and flips < max_flip_rate)
    return PrecisionCheck(
        precision=precision,
        accepted=accepted,
        max_deviation=deviation,
        flip_rate=flips,
        n_check=len(fp32),
        tolerance=float(tolerance),
        max_flip_rate=float(max_flip_rate),
    )
