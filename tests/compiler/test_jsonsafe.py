"""compiler/jsonsafe.py: TOML's inf and nan survive a trip through strict JSON (report.json's recipe)."""

import json
import math

from compiler.jsonsafe import from_json, to_json


def test_non_finite_values_round_trip_through_strict_json():
    recipe = {"passes": ["canonicalize", "dp_sgd"], "dp_sgd": {"epsilon": math.inf, "layers": {"a": {"x": -math.inf}}}}
    text = json.dumps(to_json(recipe), allow_nan=False)  # raises if an inf were left
    back = from_json(json.loads(text))
    assert back["dp_sgd"]["epsilon"] == math.inf
    assert back["dp_sgd"]["layers"]["a"]["x"] == -math.inf
    assert back["passes"] == recipe["passes"]


def test_nan_inside_lists_is_encoded_and_decoded():
    encoded = to_json({"grid": [1.0, math.nan, 2]})
    assert encoded == {"grid": [1.0, "nan", 2]}
    assert math.isnan(from_json(encoded)["grid"][1])


def test_finite_values_and_other_strings_are_left_alone():
    recipe = {"name": "infinity", "bits": 4, "lr": 0.5, "flag": True}
    assert to_json(recipe) == recipe
    assert from_json(recipe) == recipe
