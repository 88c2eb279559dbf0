"""Dask bulk scoring: equal to the single-process run, one part per part, resumable."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from realbogus.errors import ConfigError, InputError
from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.model.package import init_package, load_package
from realbogus.stamps import Stamps
from realbogus.workflows.distributed import part_fingerprint, read_scores, score_distributed
from realbogus.workflows.score import score_dataset

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """One LocalCluster of two worker processes for the module (processes: real pickling)."""
    import logging

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return load_package(init_package(tmp_path_factory.mktemp("pkg") / "pkg", seed=3))


def _dataset(path, n, rows_per_part):
    rng = np.random.default_rng(7)
    stamps = Stamps(
        data=rng.normal(scale=25, size=(n, 3, 51, 51)).astype(np.float32),
        valid_fraction=rng.uniform(0.5, 1, n).astype(np.float32),
        edge=rng.uniform(size=n) < 0.1,
    )
    table = pd.DataFrame(
        {"diaSourceId": rng.permutation(10**6)[:n].astype(np.int64), "snr": rng.uniform(5, 60, n)}
    )
    return open_dataset(write_dataset(path, table, stamps, rows_per_part=rows_per_part))


@pytest.fixture
def dataset(tmp_path):
    """A 230-row dataset in 6 parts (the last one short), ids shuffled."""
    return _dataset(tmp_path / "ds", 230, 40)


def _mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}


def test_dask_output_equals_single_process(client, package, dataset, tmp_path):
    """Parts in = parts out, same names and rows; the concatenation equals Scorer.score_dataset."""
    out = tmp_path / "scores"
    run = score_distributed(dataset.path, out, package=package, client=client, threads=1)
    assert sorted(run.scored) == [p.name for p in dataset.parts] and run.skipped == []
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [p.name for p in dataset.parts]
    for part in dataset.parts:
        assert (
            pq.ParquetFile(out / part.name).metadata.num_rows
            == pq.ParquetFile(part).metadata.num_rows
        )
    want = score_dataset(Scorer(package, threads=1), dataset)
    pd.testing.assert_frame_equal(read_scores(out), want)
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["n_rows"] == 230
        and manifest["input_content_hash"] == dataset.manifest["content_hash"]
    )
    assert not list(out.glob(".*.tmp"))


def test_rows_without_ids_get_global_row_numbers(client, package, tmp_path):
    """Without diaSourceId the ids are dataset row numbers, continued across parts."""
    rng = np.random.default_rng(1)
    stamps = Stamps(
        rng.normal(size=(25, 3, 51, 51)).astype(np.float32),
        np.ones(25, np.float32),
        np.zeros(25, bool),
    )
    ds = write_dataset(
        tmp_path / "ds", pd.DataFrame({"snr": np.arange(25.0)}), stamps, rows_per_part=10
    )
    score_distributed(ds, tmp_path / "out", package=package, client=client)
    np.testing.assert_array_equal(read_scores(tmp_path / "out")["diaSourceId"], np.arange(25))


def test_interrupted_run_resumes_without_recomputing(client, package, tmp_path):
    """Interrupt after 2 of 30 parts (its own cluster is shut down), add a stale temp file; the
    rerun scores only the missing parts, with no duplicate or missing rows."""
    dataset = _dataset(tmp_path / "ds", 300, 10)
    out = tmp_path / "scores"
    finished = []

    def stop_after_two(done, total):
        finished[:] = sorted(p.name for p in out.glob("part-*.parquet"))
        if len(finished) >= 2:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        score_distributed(
            dataset.path,
            out,
            package=package,
            scheduler="local",
            workers=2,
            progress=stop_after_two,
        )
    before = _mtimes(out)  # the cluster is gone: nothing writes any more
    assert 2 <= len(before) < len(dataset.parts)
    assert not (out / "manifest.json").exists()
    (out / ".part-00029.parquet.abc123.tmp").write_bytes(b"PAR1 half a file")  # a killed writer
    assert set(finished) <= set(before)

    run = score_distributed(dataset.path, out, package=package, client=client)
    assert set(run.skipped) == set(before) and set(run.scored) == {
        p.name for p in dataset.parts
    } - set(before)
    after = _mtimes(out)
    assert {k: after[k] for k in before} == before  # finished parts were not rewritten
    scores = read_scores(out)
    assert len(scores) == 300 and scores["diaSourceId"].is_unique
    pd.testing.assert_frame_equal(scores, score_dataset(Scorer(package, threads=1), dataset))
    assert not list(out.glob(".*.tmp"))

    again = score_distributed(dataset.path, out, package=package, client=client)
    assert again.scored == [] and len(again.skipped) == 30 and _mtimes(out) == after


def test_damaged_or_foreign_outputs_are_recomputed(client, package, dataset, tmp_path):
    """A truncated output part, one from another model and one for changed input are redone."""
    out = tmp_path / "scores"
    score_distributed(dataset.path, out, package=package, client=client)
    first = _mtimes(out)
    raw = (out / "part-00001.parquet").read_bytes()
    (out / "part-00001.parquet").write_bytes(raw[: len(raw) // 2])  # truncated in place
    # Part 3 as if written by another model: same rows, other scorer fingerprint.
    other = load_package(init_package(tmp_path / "other", seed=4))
    single = tmp_path / "single"
    score_distributed(dataset.path, single, package=other, client=client)
    os.replace(single / "part-00003.parquet", out / "part-00003.parquet")
    # Input part 4 rewritten in place with its rows reversed (same rows, sizes and statistics).
    table = pq.read_table(dataset.parts[4])
    pq.write_table(table.take(np.arange(len(table))[::-1]), dataset.parts[4], row_group_size=4096)
    run = score_distributed(dataset.path, out, package=package, client=client)
    assert sorted(run.scored) == ["part-00001.parquet", "part-00003.parquet", "part-00004.parquet"]
    assert all(
        _mtimes(out)[k] == first[k]
        for k in ("part-00000.parquet", "part-00002.parquet", "part-00005.parquet")
    )
    pd.testing.assert_frame_equal(
        read_scores(out), score_dataset(Scorer(package, threads=1), open_dataset(dataset.path))
    )


def test_local_scheduler_and_option_errors(package, dataset, tmp_path):
    """scheduler='local' starts its own cluster; bad schedulers and workers are refused first."""
    out = tmp_path / "scores"
    run = score_distributed(dataset.path, out, package=package, scheduler="local", workers=1)
    assert len(run.scored) == 6
    pd.testing.assert_frame_equal(
        read_scores(out), score_dataset(Scorer(package, threads=1), dataset)
    )
    with pytest.raises(ConfigError, match="scheduler must be"):
        score_distributed(dataset.path, tmp_path / "o2", package=package, scheduler="slurm")
    with pytest.raises(ConfigError, match="--workers .* must be"):
        score_distributed(dataset.path, tmp_path / "o3", package=package, workers=0)
    with pytest.raises(ConfigError, match="only for --scheduler local"):
        score_distributed(
            dataset.path, out, package=package, scheduler="tcp://127.0.0.1:1", workers=2
        )
    with pytest.raises(ConfigError, match="scheduler must be"):  # checked even with nothing to do
        score_distributed(dataset.path, out, package=package, scheduler="slurm")
    with pytest.raises(ConfigError, match="must not be the input"):
        score_distributed(dataset.path, dataset.path, package=package)
    with pytest.raises(InputError, match="no finished score output"):
        read_scores(tmp_path / "nothing")


def test_part_fingerprint_sees_content_changes(dataset, tmp_path):
    """Stable for a copy that keeps the mtime; changed by a rewrite, even one that resets the mtime."""
    part = dataset.parts[0]
    copy = tmp_path / part.name
    shutil.copy2(part, copy)
    assert part_fingerprint(copy) == part_fingerprint(part)
    table = pq.read_table(part)
    stamps = table["stamp"].combine_chunks()
    scaled = pa.FixedSizeListArray.from_arrays(
        pc.multiply(stamps.flatten(), 2.0), stamps.type.list_size
    )
    pq.write_table(
        table.set_column(table.schema.get_field_index("stamp"), "stamp", scaled),
        copy,
        row_group_size=4096,
    )
    stat = part.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert part_fingerprint(copy)["mtime_ns"] == part_fingerprint(part)["mtime_ns"]
    assert part_fingerprint(copy) != part_fingerprint(part)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="bad.parquet"):
        part_fingerprint(tmp_path / "bad.parquet")


def test_cli_score_with_scheduler_resumes(package, dataset, tmp_path):
    """`realbogus score --data D --scheduler local --out O` writes parts; a rerun skips them all."""
    from typer.testing import CliRunner

    from realbogus.cli import app
    from realbogus.model.package import save_package

    pkg = save_package(tmp_path / "pkg", package.model, package.card)
    args = [
        "score",
        "--model",
        str(pkg),
        "--data",
        str(dataset.path),
        "--scheduler",
        "local",
        "--out",
        str(tmp_path / "o"),
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "6 scored now, 0 already done" in first.output
    pd.testing.assert_frame_equal(
        read_scores(tmp_path / "o"), score_dataset(Scorer(package, threads=1), dataset)
    )
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "0 scored now, 6 already done" in second.output
    bad = CliRunner().invoke(
        app, [*args[:3], "--science", "x.fits", "--scheduler", "local", "--out", "o"]
    )
    assert bad.exit_code == 2
    no_scheduler = CliRunner().invoke(
        app, [*args[:5], "--workers", "2", "--out", str(tmp_path / "x.parquet")]
    )
    assert no_scheduler.exit_code == 2 and "--workers" in no_scheduler.output


def test_cli_int8_is_refused_with_its_reason(package, tmp_path):
    """--int8 on stamps with a few bright peaks: exit 1, the gate's reason, no output written."""
    from typer.testing import CliRunner

    from realbogus.cli import app
    from realbogus.io.dataset import sample_check_stamps
    from realbogus.model.package import save_package

    rng = np.random.default_rng(2)
    data = rng.normal(scale=20, size=(64, 3, 51, 51)).astype(np.float32)
    data[::8, :, 25, 25] = 3e4
    stamps = Stamps(data, np.ones(64, np.float32), np.zeros(64, bool))
    ds = open_dataset(
        write_dataset(
            tmp_path / "ds", pd.DataFrame({"diaSourceId": np.arange(64)}), stamps, rows_per_part=20
        )
    )
    check = sample_check_stamps(ds, n=16)
    assert check.shape == (16, 3, 51, 51)
    np.testing.assert_array_equal(check, data[:20:1][:16])  # from the first part, evenly spaced
    np.testing.assert_array_equal(sample_check_stamps(ds, n=8), data[:20:2][:8])
    pkg = save_package(tmp_path / "pkg", package.model, package.card)
    for extra in ([], ["--scheduler", "local"]):
        out = tmp_path / f"o{len(extra)}"
        result = CliRunner().invoke(
            app,
            [
                "score",
                "--model",
                str(pkg),
                "--data",
                str(ds.path),
                "--int8",
                "--out",
                str(out / "s.parquet" if not extra else out),
                *extra,
            ],
        )
        assert result.exit_code == 1
        assert "refused" in result.output and "tolerance 0.01" in result.output
        assert not out.exists()


def test_cli_scheduler_counts_rows_not_scored_and_exits_1(package, tmp_path):
    """With --scheduler, rows not scored are counted by status and the exit status is 1, as
    without it (docs/design.md, "Input faults")."""
    from typer.testing import CliRunner

    from realbogus.cli import app
    from realbogus.model.package import save_package

    rng = np.random.default_rng(3)
    n = 60
    stamps = Stamps(
        data=rng.normal(scale=25, size=(n, 3, 51, 51)).astype(np.float32),
        valid_fraction=np.where(np.arange(n) % 20 == 0, 0.1, 1.0).astype(np.float32),
        edge=np.zeros(n, bool),
    )
    table = pd.DataFrame({"diaSourceId": np.arange(n, dtype=np.int64) + 1})
    data = write_dataset(tmp_path / "ds", table, stamps, rows_per_part=25)
    pkg = save_package(tmp_path / "pkg", package.model, package.card)
    args = ["score", "--model", str(pkg), "--data", str(data), "--scheduler", "local"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "3 not scored" in result.output and "3 low-valid-fraction" in result.output
    scores = read_scores(tmp_path / "o")
    assert scores["reliability"].isna().sum() == 3 and len(scores) == n
