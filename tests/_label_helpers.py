"""Shared helpers of the labelling-service tests: a tiny dataset, a prepared service, clients."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from realbogus.io.dataset import write_dataset
from realbogus.label.auth import hash_password
from realbogus.label.service import ServiceConfig, prepare_service
from realbogus.stamps import Stamps

PASSWORDS = {"ada": "ada-secret-1", "vic": "vic-secret-1", "val": "val-secret-1"}
ROLES = {"ada": "admin", "vic": "volunteer", "val": "volunteer"}
#: Set in CI (.ci/postgres.sh) and by hand: a throwaway PostgreSQL database URL.
POSTGRES_ENV = "REALBOGUS_TEST_POSTGRES_URL"


def tiny_dataset(
    path: Path, n: int = 30, size: int = 15, seed: int = 3, first_id: int = 7000
) -> Path:
    """A labelled dataset of `n` random stamps (diaSourceId first_id + i, label i % 2)."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + first_id,
            "label": (np.arange(n) % 2).astype(np.int64),
            "origin": np.where(np.arange(n) % 3 == 0, "ss", "gaia"),
            "snr": rng.uniform(3, 30, n),
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-60, 0, n),
        }
    )
    data = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    stamps = Stamps(data=data, valid_fraction=np.ones(n, np.float32), edge=np.zeros(n, bool))
    return write_dataset(path, table, stamps)


def make_service(tmp_path: Path, db: str | None = None, **options):
    """A service over `tiny_dataset` with the three people of `PASSWORDS` (no gold serving)."""
    data = tiny_dataset(tmp_path / "ds", n=options.pop("n", 30))
    config = ServiceConfig(
        gold_rate=options.pop("gold_rate", 0.0),
        secure_cookies=False,
        swap_interval_s=0.05,
        **options.pop("config", {}),
    )
    service = prepare_service(data, db or str(tmp_path / "label.db"), config=config, **options)
    for name, password in PASSWORDS.items():
        service.store.add_user(name, hash_password(password), ROLES[name])
    return service


def login(client, name: str) -> str:
    """Sign `client` in as `name`; returns the CSRF token."""
    r = client.post("/api/login", json={"username": name, "password": PASSWORDS[name]})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def postgres_url() -> str | None:
    """The test PostgreSQL URL, None when unset (CI must set it: .ci/postgres.sh)."""
    return os.environ.get(POSTGRES_ENV) or None
