import pytest

from compiler import passes  # noqa: F401
from compiler.recipe import RecipeError, flow_for, validate_recipe

LAYERS = ["/1/Gemm", "/3/Gemm"]


def test_a_good_recipe_passes_and_overrides_the_flow():
    recipe = {
        "passes": ["canonicalize", "admm", "lower"],
        "admm": {"sparsity": 0.9, "bits": 4, "structure": "irregular", "layers": {"/3/Gemm": {"sparsity": 0.5}}},
        "lower": {"multipliers": 8},
    }
    validate_recipe(recipe, LAYERS)
    assert flow_for(recipe, "fpga") == ["canonicalize", "admm", "lower"]
    assert flow_for({}, "fpga") == ["canonicalize", "lower", "plan"]  # issue 11: plan is in the default flows


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"passes": ["canonicalize", "prune_everything"]}, "unknown pass 'prune_everything'"),
        ({"lower": {"weight_bitz": 4}}, "[lower] weight_bitz: unknown option"),
        ({"admm": {"sparsity": 1.0}}, "[admm] sparsity: must be a number in [0.0, 1.0)"),
        ({"admm": {"sparsity": -0.1}}, "[admm] sparsity"),
        ({"admm": {"bits": 9}}, "[admm] bits: must be an integer in 2..8"),
        ({"admm": {"bits": 1}}, "[admm] bits"),
        ({"admm": {"structure": "diagonal"}}, "[admm] structure: must be one of"),
        ({"admm": {"layers": {"/9/Gemm": {"sparsity": 0.5}}}}, "no layer of that name"),
        ({"lower": {"layers": {"/1/Gemm": {"activation_bits": 4}}}}, "not a per-layer option"),
        ({"frobnicate": {}}, "[frobnicate]: unknown pass"),
    ],
)
def test_bad_recipes_get_one_clear_error(recipe, message):
    with pytest.raises(RecipeError) as e:
        validate_recipe(recipe, LAYERS)
    assert message in str(e.value)


def test_all_problems_are_listed_together():
    with pytest.raises(RecipeError) as e:
        validate_recipe({"lower": {"a": 1, "b": 2}}, LAYERS)
    assert "[lower] a" in str(e.value) and "[lower] b" in str(e.value)


def test_unknown_target():
    with pytest.raises(RecipeError, match="unknown target"):
        flow_for({}, "gpu")
