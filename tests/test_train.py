"""Training: learns a separable toy problem, fine-tunes with a parent, resumes exactly."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from realbogus.errors import ConfigError, InputError, RealBogusWarning
from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import balance_by_subsampling, open_dataset, split_by_group, write_dataset
from realbogus.model.package import load_package
from realbogus.stamps import Stamps
from realbogus.training.train import (
    StampTorchDataset,
    TrainConfig,
    epoch_lr,
    mask_blocks,
    stamp_memmap,
    train,
)

SIZE = 36


def toy_dataset(path, n=600, seed=0):
    """Real = a PSF-like blob in difference and science; Bogus = a dipole or pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    blob = np.exp(-(xx**2 + yy**2) / 8.0)
    dipole = np.exp(-((xx - 2) ** 2 + yy**2) / 8.0) - np.exp(-((xx + 2) ** 2 + yy**2) / 8.0)
    label = rng.integers(0, 2, n)
    data = rng.normal(size=(n, 3, SIZE, SIZE)).astype(np.float32)
    amp = rng.uniform(3, 8, n)[:, None, None]
    data[:, 0] += np.where(
        label[:, None, None] == 1,
        amp * blob,
        amp * dipole * (rng.uniform(size=n) < 0.7)[:, None, None],
    )
    data[:, 1] += np.where(label[:, None, None] == 1, amp * blob, 0)
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n),
            "label": label,
            "origin": rng.choice(["injection", "gaia"], n),
            "field": rng.integers(0, 30, n),
            "snr": rng.uniform(5, 20, n),
        }
    )
    stamps = Stamps(data, np.ones(n, np.float32), np.zeros(n, bool))
    return write_dataset(path, table, stamps)


def test_split_groups_never_cross_and_keep_mix(rng):
    """No field on two sides; fractions and label mix roughly kept."""
    table = pd.DataFrame(
        {
            "field": rng.integers(0, 200, 20_000),
            "label": rng.integers(0, 2, 20_000),
            "origin": rng.choice(["a", "b", "c"], 20_000),
        }
    )
    split = split_by_group(table, seed=3)
    per_field = pd.Series(split).groupby(table["field"]).nunique()
    assert (per_field == 1).all()
    fractions = pd.Series(split).value_counts(normalize=True)
    assert abs(fractions["train"] - 0.8) < 0.03 and abs(fractions["test"] - 0.1) < 0.03
    for s in ("train", "validation", "test"):
        assert abs(table.label[split == s].mean() - table.label.mean()) < 0.03
    assert (split_by_group(table, seed=3) == split).all()


def test_balance_by_subsampling():
    """Every class is cut to the smallest; missing labels are left out."""
    labels = np.array([1, 1, 1, 0, 0, np.nan, 1, 0, 1, 1])
    keep = balance_by_subsampling(labels, seed=1)
    assert np.sum(labels[keep] == 1) == np.sum(labels[keep] == 0) == 3
    assert not np.isnan(labels[keep]).any()


def test_torch_dataset_reads_lazily_and_flips(tmp_path):
    """Items come from the memory map; flips are seeded per (seed, epoch, item)."""
    ds = open_dataset(toy_dataset(tmp_path / "toy", n=20))
    stamps = stamp_memmap(ds)
    assert isinstance(stamps, np.memmap) and stamps.shape == (20, 3, SIZE, SIZE)
    plain = StampTorchDataset(stamps, ds.table()["label"], np.arange(20))
    x, y = plain[3]
    assert torch.equal(x, torch.from_numpy(np.array(stamps[3])))
    flipped = StampTorchDataset(stamps, ds.table()["label"], np.arange(20), flip_seed=0)
    same = [torch.equal(flipped[i][0], plain[i][0]) for i in range(20)]
    assert 0 < sum(same) < 20  # some items flipped, some not
    assert all(torch.equal(flipped[i][0], flipped[i][0]) for i in range(5))  # deterministic


def test_train_learns_and_fine_tunes_with_parent(tmp_path):
    """A few epochs separate the toy classes (test AUC > 0.95); --from records the parent."""
    data = toy_dataset(tmp_path / "toy")
    config = TrainConfig(epochs=6, batch_size=32, lr=1e-3, seed=1)
    reports = []
    pkg = load_package(
        train(data, tmp_path / "m1", config=config, version="toy-v1", on_epoch=reports.append)
    )
    assert [r.epoch for r in reports] == list(range(6))
    assert pkg.card.metrics["test_roc_auc"] > 0.95
    assert pkg.card.parent is None and pkg.card.training_data["n_train"] > 0
    assert not (tmp_path / "m1.train").exists()
    child = load_package(
        train(
            data,
            tmp_path / "m2",
            config=TrainConfig(epochs=1, batch_size=32, seed=2),
            parent=tmp_path / "m1",
            version="toy-v2",
        )
    )
    assert child.card.parent == "toy-v1"


@pytest.mark.parametrize(("schedule", "masks"), [("constant", 0.0), ("cosine", 0.3)])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, schedule, masks):
    """Stop after epoch 1 of 3, rerun: the weights equal an uninterrupted run's exactly."""
    data = toy_dataset(tmp_path / "toy", n=300)
    config = TrainConfig(
        epochs=3,
        batch_size=32,
        lr=1e-3,
        seed=4,
        patience=10,
        lr_schedule=schedule,
        mask_augment=masks,
    )
    full = load_package(train(data, tmp_path / "full", config=config, version="v"))

    class Interrupted(Exception):
        pass

    def stop_after_first(report):
        if report.epoch == 1:
            raise Interrupted  # as a crash or Ctrl-C would, after epoch 1's state is saved

    with pytest.raises(Interrupted):
        train(data, tmp_path / "resumed", config=config, version="v", on_epoch=stop_after_first)
    assert (tmp_path / "resumed.train" / "state.pt").is_file() and not (
        tmp_path / "resumed"
    ).exists()
    epochs = []
    resumed = load_package(
        train(
            data,
            tmp_path / "resumed",
            config=config,
            version="v",
            on_epoch=lambda r: epochs.append(r.epoch),
        )
    )
    assert epochs == [2]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(Interrupted):
        train(data, tmp_path / "x", config=config, on_epoch=stop_after_first)
    with pytest.raises(ConfigError, match="other settings"):
        train(data, tmp_path / "x", config=TrainConfig(epochs=3, batch_size=16, seed=4))


def test_cosine_schedule_runs_from_lr_to_a_hundredth():
    config = TrainConfig(epochs=5, lr=1e-3, lr_schedule="cosine")
    rates = [epoch_lr(config, e) for e in range(5)]
    assert (
        rates[0] == pytest.approx(1e-3)
        and rates[-1] == pytest.approx(1e-5)
        and rates[2] == pytest.approx(0.505e-3)
    )
    assert all(a > b for a, b in itertools.pairwise(rates))
    assert {epoch_lr(TrainConfig(epochs=5, lr=1e-3), e) for e in range(5)} == {1e-3}


def test_config_validation():
    """Bad settings fail before any work, naming the field."""
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ConfigError, match="--batch-size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="threshold"):
        TrainConfig(threshold=1.5)


def test_choose_cutoff_prefers_window_middle_then_crossing():
    """Window middle when the requirement holds somewhere; else the P = C crossing; else 0.5."""
    from realbogus.training.train import choose_cutoff

    labels = np.array([0] * 50 + [1] * 50)
    separable = np.concatenate([np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)])
    cut, how = choose_cutoff(labels, separable)
    assert 0.4 < cut <= 0.6 and "window" in how
    noisy = np.random.default_rng(0).uniform(size=100)
    with pytest.warns(RealBogusWarning, match="barely separates"):
        cut, how = choose_cutoff(labels, noisy)
    assert "crossing" in how or "default" in how


def test_choose_cutoff_refuses_an_empty_or_one_class_validation_set():
    """Why #5: the cutoff was 'chosen' (0.5) from a validation set with nothing in it."""
    from realbogus.training.train import MIN_CUTOFF_ROWS, choose_cutoff

    labels = np.array([0] * 50 + [1] * 50)
    separable = np.concatenate([np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)])
    with pytest.raises(InputError, match="--cutoff"):
        choose_cutoff(labels, separable, snr=np.full(100, 3.0))  # nothing above SNR 5
    with pytest.raises(InputError, match=r"0 Real and 50 Bogus"):
        choose_cutoff(labels[:50], separable[:50])
    few = np.r_[np.zeros(50, int), np.ones(MIN_CUTOFF_ROWS - 1, int)]
    with pytest.raises(InputError, match="--cutoff"):
        choose_cutoff(few, np.linspace(0, 1, len(few)))


def test_choose_cutoff_warns_when_the_model_does_not_separate():
    """Why #5: a 2-epoch model scoring everything ~0.49 got an automatic cutoff without a word."""
    from realbogus.training.train import choose_cutoff

    labels = np.array([0] * 50 + [1] * 50)
    flat = 0.49 + np.random.default_rng(0).normal(scale=1e-3, size=100)
    with pytest.warns(RealBogusWarning, match="--epochs"):
        choose_cutoff(labels, flat)


def test_training_without_a_test_split_warns(tmp_path):
    """n_test 0 is said, not only written into the card."""
    toy = open_dataset(toy_dataset(tmp_path / "toy", n=300))
    table = toy.table(columns=None).drop(
        columns=["stamp", "valid_fraction", "edge"], errors="ignore"
    )
    stamps = Stamps(stamp_memmap(toy).copy(), np.ones(300, np.float32), np.zeros(300, bool))
    two_fields = table.assign(field=np.arange(300) % 2)  # two fields: none left for a test split
    data = write_dataset(tmp_path / "two", two_fields, stamps)
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-3, seed=1, fractions=(0.5, 0.45, 0.05))
    with pytest.warns(RealBogusWarning, match="no test rows"):
        pkg = load_package(train(data, tmp_path / "m", config=config, version="t"))
    assert pkg.card.training_data["n_test"] == 0


def test_too_few_groups_says_what_to_do(tmp_path):
    """Why #8: "too few labelled groups (440/0 rows)" said nothing about what to do."""
    table_rows = 40
    rng = np.random.default_rng(0)
    stamps = Stamps(
        rng.normal(size=(table_rows, 3, SIZE, SIZE)).astype(np.float32),
        np.ones(table_rows, np.float32),
        np.zeros(table_rows, bool),
    )
    one_field = pd.DataFrame(
        {"diaSourceId": np.arange(table_rows), "label": np.arange(table_rows) % 2, "field": 0}
    )
    data = write_dataset(tmp_path / "one", one_field, stamps)
    with pytest.raises(InputError, match="simulate more fields"):
        train(data, tmp_path / "m", config=TrainConfig(epochs=1))


def test_input_scale_is_folded_exactly_into_conv1(rng):
    """conv1 on x / scale equals the folded conv1 on raw x; unfolding restores the weights."""
    from realbogus.model.network import DMTN337CNN
    from realbogus.training.train import _fold_scale, robust_channel_scale

    torch.manual_seed(0)
    model = DMTN337CNN(SIZE).eval()
    raw = (rng.normal(size=(6, 3, SIZE, SIZE)) * [[[[300.0]], [[120.0]], [[40.0]]]]).astype(
        np.float32
    )
    scale = robust_channel_scale(raw, np.arange(6))
    np.testing.assert_allclose(scale, [300, 120, 40], rtol=0.1)
    want = model(torch.from_numpy(raw / scale[None, :, None, None])).detach()
    before = model.conv1.weight.detach().clone()
    _fold_scale(model, scale)
    torch.testing.assert_close(model(torch.from_numpy(raw)).detach(), want, rtol=1e-5, atol=1e-6)
    _fold_scale(model, scale, inverse=True)
    torch.testing.assert_close(model.conv1.weight.detach(), before, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("preprocessing", ["asinh", "asinh-noise", "none"])
def test_training_on_raw_large_pixel_values(tmp_path, preprocessing):
    """Pixels in the thousands (raw nJy) train well with either preprocessing; the package
    takes raw pixels and reproduces the test AUC that train() measured."""
    ds = open_dataset(toy_dataset(tmp_path / "toy", n=600))
    table, stamps = ds.table(), ds.stamps()
    raw = Stamps(stamps.data * 1000.0, stamps.valid_fraction, stamps.edge)
    data = write_dataset(tmp_path / "raw", table.drop(columns=["valid_fraction", "edge"]), raw)
    config = TrainConfig(epochs=6, batch_size=32, lr=1e-3, seed=1, preprocessing=preprocessing)
    pkg = load_package(train(data, tmp_path / "m", config=config, version="raw"))
    assert pkg.card.metrics["test_roc_auc"] > 0.95
    assert pkg.card.preprocessing == preprocessing
    scale = (
        pkg.card.preprocessing_scale
        if preprocessing != "none"
        else pkg.card.hyperparameters["input_scale_folded_into_conv1"]
    )
    if preprocessing == "asinh-noise":  # dimensionless: each channel's noise over the difference's
        assert scale[0] == 1.0 and all(0.05 < s < 20 for s in scale)
    else:
        assert 500 < scale[0] < 2000
    rows = np.flatnonzero(split_by_group(table, seed=1) == "test")
    from realbogus.evaluation.metrics import roc_auc

    for backend in ("torch", "onnx"):
        scores = Scorer(pkg, backend=backend).predict(raw.data[rows])
        assert (
            abs(roc_auc(table.label.to_numpy()[rows], scores) - pkg.card.metrics["test_roc_auc"])
            < 1e-4
        )


def test_fine_tuning_keeps_the_parent_preprocessing(tmp_path):
    """A child reuses its parent's preprocessing and scale (asinh-noise by default); asking for
    another preprocessing is refused."""
    data = toy_dataset(tmp_path / "toy", n=300)
    parent = load_package(
        train(
            data, tmp_path / "p", config=TrainConfig(epochs=1, batch_size=32, seed=1), version="p"
        )
    )
    child = load_package(
        train(
            data,
            tmp_path / "c",
            config=TrainConfig(epochs=1, batch_size=32, seed=2),
            parent=parent,
            version="c",
        )
    )
    assert parent.card.preprocessing == child.card.preprocessing == "asinh-noise"
    assert child.card.preprocessing_scale == parent.card.preprocessing_scale
    with pytest.raises(ConfigError, match="uses preprocessing 'asinh-noise', not 'none'"):
        train(
            data, tmp_path / "x", config=TrainConfig(epochs=1, preprocessing="none"), parent=parent
        )


def test_mask_blocks_zero_rectangles_in_all_planes_but_never_the_centre(rng):
    x = rng.normal(size=(400, 3, 63, 63)).astype(np.float32) + 5
    which = np.arange(400) % 2 == 0
    mask_blocks(x, which, np.random.default_rng(1))
    zero = x == 0
    assert not zero[~which].any()  # untouched stamps
    assert (zero[:, 0] == zero[:, 1]).all() and (zero[:, 0] == zero[:, 2]).all()
    assert not zero[:, :, 28:35, 28:35].any()
    masked = zero[which, 0].mean(axis=(1, 2))
    assert (masked > 0).mean() > 0.7 and 0.02 < np.median(masked) < 0.4
    with pytest.raises(ConfigError, match="mask_augment"):
        TrainConfig(mask_augment=1.5)


@pytest.mark.parametrize("rotations", [False, True])
def test_training_batches_show_mirror_images_and_with_rotations_quarter_turns(rotations):
    """Every training stamp is one of its 8 orientations; transposed ones only with `rotations`,
    and then all 8 appear about equally often."""
    from realbogus.training.train import _batches

    stamp = np.arange(3 * 9 * 9, dtype=np.float32).reshape(3, 9, 9)  # no symmetry
    orientations = [
        np.rot90(stamp, k, axes=(1, 2))[:, :, ::-1] if f else np.rot90(stamp, k, axes=(1, 2))
        for k in range(4)
        for f in (0, 1)
    ]
    n = 4000
    stamps, labels = np.repeat(stamp[None], n, axis=0), np.zeros(n, np.int64)
    counts = np.zeros(8, int)
    for x, _ in _batches(
        stamps,
        labels,
        np.arange(n),
        batch_size=500,
        rng=np.random.default_rng(0),
        flips=True,
        rotations=rotations,
    ):
        for s in x.numpy():
            counts[[i for i, o in enumerate(orientations) if np.array_equal(s, o)][0]] += 1
    quarter_turned = counts[[2, 3, 6, 7]]  # odd k: not reachable by flips alone
    assert counts.sum() == n and (quarter_turned.sum() > 0) == rotations
    seen = counts[counts > 0]
    assert len(seen) == (8 if rotations else 4) and seen.min() > n / len(seen) * 0.85
