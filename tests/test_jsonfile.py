"""Strict JSON (issue 19): no NaN or Infinity in card.json, manifests, metrics.json."""

import json
import math

import numpy as np
import pytest

from realbogus.io.jsonfile import dumps_strict, jsonable
from realbogus.model.card import ModelCard
from realbogus.model.package import init_package, load_package, save_package


def _strict_load(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_jsonable_turns_non_finite_numbers_into_null():
    value = {
        "a": float("nan"),
        "b": [np.float32(np.inf), np.int64(3)],
        "c": np.array([1.5, -np.inf]),
    }
    assert jsonable(value) == {"a": None, "b": [None, 3], "c": [1.5, None]}
    assert _strict_load(dumps_strict(value)) == {"a": None, "b": [None, 3], "c": [1.5, None]}


def test_card_json_is_strict(tmp_path):
    """Why #5: training wrote "val_purity": NaN into card.json (not JSON)."""
    package = load_package(init_package(tmp_path / "p"))
    card = ModelCard(
        **{
            **package.card.model_dump(),
            "metrics": {"val_purity": math.nan, "history": [{"loss": math.inf}]},
        }
    )
    path = save_package(tmp_path / "q", package.model, card)
    stored = _strict_load((path / "card.json").read_text())
    assert stored["metrics"] == {"val_purity": None, "history": [{"loss": None}]}
    assert load_package(path).card.metrics["val_purity"] is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_dumps_strict_never_writes_non_standard_constants(bad):
    assert "NaN" not in dumps_strict({"x": bad}) and "Infinity" not in dumps_strict([bad])
