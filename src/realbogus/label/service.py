"""Set a labelling service up: open DATA and the database, store the subjects, order the queue;
add the subjects of alert packets uploaded while it runs."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model.package import ModelPackage
from .live import LiveSwap
from .queue import MC_STRATEGIES, STRATEGIES, default_strategy, mc_dropout, static_priority
from .source import SubjectSource, load_source, subject_rows
from .store import Retirement, Store, open_store
from .uploads import decode_upload, save_upload, uploads_folder

__all__ = ["ServiceConfig", "Service", "UploadsOff", "prepare_service"]


class UploadsOff(InputError):
    """An alert upload to a service started without ``--uploads``."""


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
        if not self.max_body_bytes >= 1024:
            msg = f"--max-body-mb must allow at least 1 KiB; got {self.max_body_bytes} bytes"
            raise ConfigError(msg)
        if self.top_k < 1:
            msg = f"top_k must be >= 1; got {self.top_k}"
            raise ConfigError(msg)


@dataclass
class Service:
    """A store, the subjects' stamps, live SWAP and the options, as the app uses them.

    `package` (the MC-dropout model, for the `MC_STRATEGIES`), `mc_samples` and `seed` order the
    subjects of uploads as those of DATA were; `uploads` is the folder uploads are kept in (None:
    uploads refused).
    """

    store: Store
    source: SubjectSource
    config: ServiceConfig
    package: ModelPackage | None = None
    mc_samples: int = 20
    seed: int = 0
    uploads: Path | None = None
    live: LiveSwap = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.live = LiveSwap(
            self.store,
            set_priority=self.config.strategy == "swap",
            interval_s=self.config.swap_interval_s,
        )

    def add_alerts(self, payload: bytes) -> dict:
        """Make subjects of an uploaded alert file (`uploads.decode_upload`).

        The file is kept in `uploads` before its subjects are stored, so a restart serves them
        again. Alerts whose `diaSourceId` is already a subject are counted, not added.

        Returns
        -------
        dict
            ``added``, ``already`` (subjects before), ``failed`` (records that did not read),
            ``reasons`` (the first few) and ``file`` (the kept file's name, or None).

        Raises
        ------
        UploadsOff
            The service was started without ``--uploads``.
        InputError
            Nothing in the file reads as an alert packet.
        """
        if self.uploads is None:
            msg = "this service takes no uploads: serve again with --uploads DIR"
            raise UploadsOff(msg)
        batch = decode_upload(payload, stamp_size=self.source.stamp_size)
        table = batch.table.reset_index(drop=True)
        ids = table["diaSourceId"].astype("int64")
        with self._lock:
            already = np.fromiter((i in self.source for i in ids), bool, len(ids))
            new = ~already & ~ids.duplicated().to_numpy()
            kept = None
            if new.any():
                kept = save_upload(payload, self.uploads)
                stamps = batch.stamps.data[new]
                self.source.extend(table[new].reset_index(drop=True), stamps)
                _store_subjects(self, table[new].reset_index(drop=True), stamps)
        self.live.poke()
        return {
            "added": int(new.sum()),
            "already": int((~new).sum()),
            "failed": len(batch.failures),
            "reasons": [f.reason for f in batch.failures[:5]],
            "file": kept.name if kept is not None else None,
        }

    def close(self) -> None:
        """Stop live SWAP, release the database and the stamp cache."""
        self.live.stop()
        self.store.close()
        self.source.close()


def _store_subjects(
    service: Service, table: pd.DataFrame, stamps: np.ndarray, *, gold_fraction: float = 0.0
) -> None:
    """Store detections as subjects (new ones only) with the queue strategy's priorities."""
    strategy, seed = service.config.strategy, service.seed
    mc = None
    if strategy in MC_STRATEGIES:
        mc = mc_dropout(service.package, stamps, n_samples=service.mc_samples, seed=seed)
    priority = static_priority(strategy, table, mc=mc, seed=seed)
    rows = subject_rows(table, gold_fraction=gold_fraction, seed=seed)
    rows["priority"] = priority
    if mc is not None:
        rows["model_score"] = mc.mean
        rows["model_uncertainty"] = mc.bald if strategy == "bald" else mc.entropy
    service.store.add_subjects(rows)
    if strategy != "swap":
        ids = service.store.subjects_frame(["id", "dia_source_id"]).set_index("dia_source_id")
        sid = ids["id"].reindex(rows["diaSourceId"].to_numpy()).to_numpy()
        service.store.set_priorities(dict(zip(sid.tolist(), priority.tolist(), strict=True)))


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
    uploads: str | os.PathLike | None = None,
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
    uploads : path-like, optional
        Folder for alert packets admins upload while serving (made if missing; outside DATA);
        its saved packets are subjects too. None: uploads are refused.
    """
    import dataclasses

    strategy = strategy or default_strategy(model is not None)
    config = dataclasses.replace(config or ServiceConfig(), strategy=strategy)
    if strategy in MC_STRATEGIES and model is None:
        msg = f"--strategy {strategy} needs --model PACKAGE for MC dropout"
        raise InputError(msg)
    folder = uploads_folder(uploads, data) if uploads is not None else None
    source = load_source(data, stamp_size=stamp_size, uploads=folder)
    try:
        store = open_store(db, retirement=retirement)
        known = store.subjects_frame()["dia_source_id"].to_numpy()
        missing = np.setdiff1d(known, source.table["diaSourceId"].to_numpy())
        if len(missing):
            where = f"DATA {source.path}" + (f" and --uploads {folder}" if folder else "")
            msg = (
                f"--db holds {len(missing)} subjects that {where} lack "
                f"(e.g. diaSourceId {int(missing[0])}); serve the DATA (and --uploads) this "
                "database was made from"
            )
            raise InputError(msg)
        package = None
        if strategy in MC_STRATEGIES:
            from ..model.package import load_package

            package = load_package(model)
        service = Service(
            store=store,
            source=source,
            config=config,
            package=package,
            mc_samples=mc_samples,
            seed=seed,
            uploads=folder,
        )
        _store_subjects(service, source.table, source.stamps, gold_fraction=gold_fraction)
    except BaseException:
        source.close()
        raise
    service.live.refresh()
    return service
