"""Survey configs: presets, YAML overrides and validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from realbogus.errors import ConfigError
from realbogus.sim import PRESETS, SimConfig, load_config, preset


def test_presets_match_the_surveys() -> None:
    """rubin: 0.2"/px, seeing 0.5-1.3", 51 px stamps; ztf: 1.01"/px, 1.5-3", 63 px stamps."""
    rubin, ztf = preset("rubin"), preset("ztf")
    assert (rubin.pixel_scale, rubin.seeing, rubin.stamp_size) == (0.2, (0.5, 1.3), 51)
    assert (ztf.pixel_scale, ztf.seeing, ztf.stamp_size) == (1.01, (1.5, 3.0), 63)
    assert set(PRESETS) >= {"rubin", "ztf", "rubin-small", "ztf-small"}
    small = preset("rubin-small")
    assert small.image_size == 512 and small.scene.n_stars < rubin.scene.n_stars


def test_yaml_overrides_are_nested_and_partial(tmp_path: Path) -> None:
    """A YAML file overrides single nested keys and keeps the rest of the preset."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "survey: ztf\nseeing: [2.0, 2.5]\ninjection:\n  n_fakes: 7\nsubtraction:\n  method: zogy\n"
    )
    cfg = load_config(path)
    assert cfg.name == "ztf" and cfg.seeing == (2.0, 2.5)
    assert (
        cfg.injection.n_fakes == 7
        and cfg.injection.negative_fraction == preset("ztf").injection.negative_fraction
    )
    assert cfg.subtraction.method == "zogy"
    assert SimConfig(**cfg.to_dict()) == cfg  # round trip


def test_config_is_immutable() -> None:
    """Configs are frozen."""
    with pytest.raises(Exception, match="frozen"):
        preset("rubin").seeing = (1.0, 2.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seeing": [1.3, 0.5]}, r"seeing must be \(low, high\)"),
        ({"image_size": 10}, "image_size"),
        ({"stamp_size": 50}, "stamp_size must be odd"),
        ({"injection": {"negative_fraction": 1.5}}, "injection.negative_fraction"),
        ({"subtraction": {"method": "hotpants"}}, "subtraction.method"),
        ({"scene": {"n_stars": 10, "galaxies": 3}}, "scene.galaxies"),
        ({"seeing": [0.1, 0.3]}, "undersampled"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(overrides: dict, message: str) -> None:
    """Out-of-range values and unknown keys raise ConfigError naming the field."""
    with pytest.raises(ConfigError, match=message):
        load_config(overrides)


def test_bad_files_and_presets(tmp_path: Path) -> None:
    """Unknown presets, missing files, invalid YAML and non-mapping YAML raise ConfigError."""
    with pytest.raises(ConfigError, match="unknown survey preset 'lsst'"):
        load_config(None, survey="lsst")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeing: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)
    with pytest.raises(ConfigError, match=str(bad.parent)):
        bad.write_text("seeing: [2, 1]\n")
        load_config(bad)


def test_a_registered_preset_simulates_from_the_cli(tmp_path: Path) -> None:
    """The recipe of docs/design.md "Adding a survey preset": a toy survey (another pixel scale
    and stamp size) registered in code is simulated by `realbogus simulate --survey NAME`."""
    from typer.testing import CliRunner

    from realbogus.cli import app
    from realbogus.io.dataset import open_dataset
    from realbogus.sim import register_preset

    toy = preset("rubin-small").model_copy(
        update={"name": "toy", "pixel_scale": 0.3, "stamp_size": 45, "image_size": 360}
    )
    register_preset(toy, small_size=200)
    try:
        assert preset("toy") is toy and preset("toy-small").image_size == 200
        with pytest.raises(ConfigError, match="already registered"):
            register_preset(toy.model_copy(update={"band": "g"}))
        out = tmp_path / "toy"
        result = CliRunner().invoke(
            app, ["simulate", "--survey", "toy", "--visits", "1", "--seed", "2", "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        dataset = open_dataset(out)
        assert dataset.stamp_size == 45 and len(dataset) > 0
        assert dataset.manifest["provenance"]["survey"] == "toy"
    finally:
        PRESETS.pop("toy", None)
        PRESETS.pop("toy-small", None)
