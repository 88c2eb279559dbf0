"""Set a labelling service up: open DATA and the database, store the subjects, order the queue."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .live import LiveSwap
from .queue import MC_STRATEGIES, STRATEGIES, default_strategy, mc_dropout, static_priority
from .source import SubjectSource, load_source, subject_rows
from .store import Retirement, Store, open_store

__all__ = ["ServiceConfig", "Service", "prepare_service"]


@dataclass(frozen=True)
class ServiceConfig:
    """Options of a running service.

    Attributes
    ----------
    strategy : str
        Queue strategy (`queue.STRATEGIES`).
    gold_rate : float
        Chance that "next subject" serves an unseen gold subject (feedback), in [0, 1].
    top_k : int
        The next subject is drawn among the `top_k` highest-priority ones.
    secure_cookies : bool
        Mark the session cookie Secure (HTTPS only). `serve` turns it off on loopback hosts.
    session_hours : float
        Session lifetime, hours.
    max_body_bytes : int
        Larger request bodies are refused with 413.
    login_failures, login_window_s : int, float
        Failed logins allowed per user name and per client address within the window.
    swap_interval_s : float
        Least time between live SWAP refreshes, seconds.
    """

    strategy: str = "swap"
    gold_rate: float = 0.1
    top_k: int = 8
    secure_cookies: bool = True
    session_hours: float = 12.0
    max_body_bytes: int = 1 << 20
    login_failures: int = 5
    login_window_s: float = 60.0
    swap_interval_s: float = 10.0

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if self.strategy not in STRATEGIES:
            msg = f"--strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}"
            raise ConfigError(msg)
        if not 0 <= self.gold_rate <= 1:
            msg = f"--gold-rate must be in [0, 1]; got {self.gold_rate}"
            raise ConfigError(msg)
        if not self.swap_interval_s > 0:
            msg = f"--swap-interval must be > 0 seconds; got {self.swap_interval_s}"
            raise ConfigError(msg)
        if self.top_k < 1:
            msg = f"top_k must be >= 1; got {self.top_k}"
            raise ConfigError(msg)


@dataclass
class Service:
    """A store, the subjects' stamps, live SWAP and the options, as the app uses them."""

    store: Store
    source: SubjectSource
    config: ServiceConfig
    live: LiveSwap = field(init=False)

    def __post_init__(self) -> None:
        self.live = LiveSwap(
            self.store,
            set_priority=self.config.strategy == "swap",
            interval_s=self.config.swap_interval_s,
        )

    def close(self) -> None:
        """Stop live SWAP, release the database and the stamp cache."""
        self.live.stop()
        self.store.close()
        self.source.close()


def prepare_service(
    data: str | os.PathLike,
    db: str,
    *,
    config: ServiceConfig | None = None,
    strategy: str | None = None,
    model: str | None = None,
    gold_fraction: float = 0.0,
    mc_samples: int = 20,
    stamp_size: int = 63,
    retirement: Retirement | None = None,
    seed: int = 0,
) -> Service:
    """Open DATA and the database (migrated), add new subjects and set the queue's priorities.

    Parameters
    ----------
    data : path-like
        A realbogus dataset or a folder of alert packets.
    db : str
        Database URL or SQLite path (`store.database_url`).
    config : ServiceConfig, optional
        Service options; its `strategy` is replaced by `strategy` when that is given.
    strategy : str, optional
        Queue strategy; default `queue.default_strategy` (``likely-real`` with a model, else ``swap``).
    model : str, optional
        Model package (name or path) for the MC-dropout strategies.
    gold_fraction : float
        Seeded fraction of DATA's labelled detections made gold subjects on first ingestion.
    mc_samples : int
        MC-dropout passes.
    stamp_size : int
        Stamp side for alert packets, pixels.
    seed : int
        Seed of the gold draw, the dropout masks and the random order.
    """
    import dataclasses

    strategy = strategy or default_strategy(model is not None)
    config = dataclasses.replace(config or ServiceConfig(), strategy=strategy)
    source = load_source(data, stamp_size=stamp_size)
    try:
        store = open_store(db, retirement=retirement)
        known = store.subjects_frame()["dia_source_id"].to_numpy()
        missing = np.setdiff1d(known, source.table["diaSourceId"].to_numpy())
        if len(missing):
            msg = (
                f"--db holds {len(missing)} subjects that DATA {source.path} lacks "
                f"(e.g. diaSourceId {int(missing[0])}); serve the DATA this database was made from"
            )
            raise InputError(msg)
        mc = None
        if strategy in MC_STRATEGIES:
            if model is None:
                msg = f"--strategy {strategy} needs --model PACKAGE for MC dropout"
                raise InputError(msg)
            from ..model.package import load_package

            mc = mc_dropout(load_package(model), source.stamps, n_samples=mc_samples, seed=seed)
        priority = static_priority(strategy, source.table, mc=mc, seed=seed)
        rows = subject_rows(source.table, gold_fraction=gold_fraction, seed=seed)
        rows["priority"] = priority
        if mc is not None:
            rows["model_score"] = mc.mean
            rows["model_uncertainty"] = mc.bald if strategy == "bald" else mc.entropy
        store.add_subjects(rows)
        if strategy != "swap":
            ids = store.subjects_frame().set_index("dia_source_id")["id"]
            sid = ids.reindex(rows["diaSourceId"].to_numpy()).to_numpy()
            store.set_priorities(dict(zip(sid.tolist(), priority.tolist(), strict=True)))
    except BaseException:
        source.close()
        raise
    service = Service(store=store, source=source, config=config)
    service.live.refresh()
    return service
