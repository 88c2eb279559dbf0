"""Active-learning strategies of the labelling queue: MC dropout (BALD, entropy), ensemble,
SWAP uncertainty, random order, and the service's priorities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _label_helpers import tiny_dataset

from realbogus.errors import ConfigError, InputError
from realbogus.label.queue import (
    MC_STRATEGIES,
    STRATEGIES,
    McDropout,
    binary_entropy,
    default_strategy,
    mc_dropout,
    static_priority,
    swap_priority,
)
from realbogus.label.service import prepare_service
from realbogus.model.package import load_package


@pytest.fixture(scope="module")
def package():
    """The built-in rubin-v0.1 package (51 px stamps, DMTN CNN with dropout)."""
    return load_package("rubin-v0.1")


def test_entropy_and_swap_priority():
    """H(0.5) = 1 bit, H(0) = H(1) = 0; SWAP uncertainty peaks at Pr = 0.5."""
    assert binary_entropy(np.array([0.5, 0.0, 1.0])) == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)
    assert swap_priority(np.array([0.5, 0.9, 0.1, 1.0])) == pytest.approx([1.0, 0.2, 0.2, 0.0])
    assert default_strategy(True) == "likely-real" and default_strategy(False) == "swap"


def test_mc_dropout(package, rng):
    """Seeded passes repeat exactly; 0 <= BALD <= entropy <= 1 bit; the mean differs from a
    single deterministic pass only through dropout; the global torch RNG is untouched."""
    import torch

    stamps = rng.normal(0, 50, (12, 3, 51, 51)).astype(np.float32)
    state = torch.random.get_rng_state()
    a = mc_dropout(package, stamps, n_samples=6, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    b = mc_dropout(package, stamps, n_samples=6, seed=1)
    c = mc_dropout(package, stamps, n_samples=6, seed=2)
    np.testing.assert_array_equal(a.bald, b.bald)
    assert not np.array_equal(a.mean, c.mean)
    assert (a.bald >= 0).all() and (a.bald <= a.entropy + 1e-12).all() and (a.entropy <= 1).all()
    assert a.bald.max() > 0
    assert package.model.training is False  # the package's model is left in eval mode
    with pytest.raises(InputError, match="--model"):
        mc_dropout(package, stamps[:, :, :40, :40])
    with pytest.raises(ConfigError, match="--mc-samples"):
        mc_dropout(package, stamps, n_samples=1)


def test_static_priority():
    """ensemble reads reliabilityErr; random is seeded; bald without MC dropout names --model."""
    table = pd.DataFrame({"reliabilityErr": [0.1, np.nan, 0.3]})
    assert static_priority("ensemble", table).tolist() == [0.1, 0.0, 0.3]
    r1, r2 = static_priority("random", table, seed=4), static_priority("random", table, seed=4)
    np.testing.assert_array_equal(r1, r2)
    assert static_priority("swap", table).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="--model"):
        static_priority("bald", table)
    with pytest.raises(ConfigError, match="reliabilityErr"):
        static_priority("ensemble", pd.DataFrame({"x": [1]}))
    with pytest.raises(ConfigError, match="--strategy"):
        static_priority("oracle", table)


def test_mc_strategies_order():
    """On generated MC-dropout summaries each MC strategy serves its own quantity first:
    bald the largest mutual information, entropy the mean nearest 0.5, likely-real the highest
    mean; none of them runs without MC dropout."""
    mean = np.array([0.2, 0.95, 0.5, 0.7])
    draws = np.array([[0.1, 0.9, 0.5, 0.4], [0.3, 1.0, 0.5, 1.0]])  # T = 2 passes
    assert np.allclose(draws.mean(axis=0), mean)
    entropy = binary_entropy(mean)
    mc = McDropout(mean=mean, entropy=entropy, bald=entropy - binary_entropy(draws).mean(axis=0))
    table = pd.DataFrame({"x": np.arange(4)})
    order = {
        s: np.argsort(-static_priority(s, table, mc=mc), kind="stable").tolist()
        for s in MC_STRATEGIES
    }
    assert order["likely-real"] == [1, 3, 2, 0]
    assert order["entropy"] == [2, 3, 0, 1]
    assert order["bald"] == [3, 1, 0, 2]  # 0.40, 0.05, 0.05, 0 bits: the passes disagree most on 3
    assert set(MC_STRATEGIES) < set(STRATEGIES)
    for s in MC_STRATEGIES:
        with pytest.raises(ConfigError, match="--model"):
            static_priority(s, table)


def test_service_orders_by_likely_real(tmp_path, package):
    """With --model and the default strategy (likely-real), the queue's top subject is the one
    with the highest MC-dropout mean reliability; the uncertainty column holds the entropy."""
    data = tiny_dataset(tmp_path / "ds", n=10, size=51, seed=5)
    svc = prepare_service(data, str(tmp_path / "l.db"), model="rubin-v0.1", mc_samples=4, seed=0)
    try:
        assert svc.config.strategy == "likely-real"
        subj = svc.store.subjects_frame()
        mc = mc_dropout(package, svc.source.stamps, n_samples=4, seed=0)
        by_id = subj.set_index("dia_source_id")
        order = svc.source.table["diaSourceId"].to_numpy()
        np.testing.assert_allclose(by_id.loc[order, "priority"], mc.mean)
        np.testing.assert_allclose(by_id.loc[order, "model_score"], mc.mean)
        np.testing.assert_allclose(by_id.loc[order, "model_uncertainty"], mc.entropy)
        import random

        uid = svc.store.add_user("u", "h", "volunteer")
        top = svc.store.next_subject(uid, top_k=1, rng=random.Random(0))
        assert top["dia_source_id"] == order[int(np.argmax(mc.mean))]
    finally:
        svc.close()
    with pytest.raises(InputError, match="--model"):
        prepare_service(data, str(tmp_path / "m.db"), strategy="bald")
