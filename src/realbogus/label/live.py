"""Live SWAP over the labelling database: the same code as `realbogus crowd aggregate`.

`LiveSwap.refresh` reads every classification and the gold labels, runs
`realbogus.crowd.aggregate(..., method="swap")` (DMTN-337 defaults) and writes each subject's
Pr(Real) back (and, for the ``swap`` queue strategy, its priority). `LiveSwap.poke` asks for a
refresh; a background thread runs at most one refresh per `interval_s`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd

from ..crowd.aggregate import aggregate
from .queue import swap_priority
from .store import Store

__all__ = ["LiveSwap"]

_LOG = logging.getLogger(__name__)


class LiveSwap:
    """Keeps SWAP's Pr(Real) and volunteer skills current.

    Parameters
    ----------
    store : Store
        The database.
    set_priority : bool
        Write SWAP's uncertainty as the queue priority (the ``swap`` strategy).
    interval_s : float
        Least time between two background refreshes, seconds.
    """

    def __init__(self, store: Store, *, set_priority: bool, interval_s: float = 10.0) -> None:
        self.store = store
        self.set_priority = set_priority
        self.interval_s = interval_s
        self.volunteers = pd.DataFrame()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self) -> pd.DataFrame:
        """Run SWAP on the database now; returns the per-subject table (`CrowdLabels.subjects`),
        empty while no gold subject has an answer (Pr(Real) then stays at the prior)."""
        with self._lock:
            votes = self.store.votes_frame()
            subj = self.store.subjects_frame(["id", "gold", "p_real"])
            if votes.empty:
                return pd.DataFrame()
            gold = subj.loc[subj["gold"].notna(), ["id", "gold"]]
            if not votes["subject_id"].isin(gold["id"]).any():
                # SWAP learns skills only from gold subjects: without an answered one every
                # subject stays at its prior (crowd aggregate refuses such votes).
                return pd.DataFrame()
            labels = aggregate(
                votes.assign(volunteer=votes["user_id"].astype(str)),
                pd.Series(gold["gold"].astype(int).to_numpy(), index=gold["id"].to_numpy()),
                method="swap",
            )
            p = labels.subjects.set_index("subject_id")["p_real"]
            old = subj.set_index("id")["p_real"].reindex(p.index)
            changed = p[~np.isclose(p.to_numpy(), old.to_numpy(), rtol=0, atol=1e-12)]
            self.store.set_p_real(
                changed.to_dict(),
                dict(zip(changed.index, swap_priority(changed.to_numpy()), strict=True))
                if self.set_priority
                else None,
            )
            names = votes.drop_duplicates("user_id").set_index("user_id")["username"]
            vol = labels.volunteers.copy()
            vol["username"] = names.reindex(vol["volunteer"].astype(int)).to_numpy()
            self.volunteers = vol
            return labels.subjects

    def poke(self) -> None:
        """Ask the background thread for a refresh."""
        self._wake.set()

    def start(self) -> None:
        """Start the background thread (daemon)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-swap", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.refresh()
            except Exception:  # keep serving; the next poke retries
                _LOG.exception("live SWAP refresh failed")
            self._stop.wait(self.interval_s)
