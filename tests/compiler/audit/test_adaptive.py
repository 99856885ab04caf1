"""The adaptive audit: shadows put through the build's own recipe (compiler/audit/replay.py)."""

import json
import shutil

import numpy as np
import pytest

from compiler import api
from compiler.audit.replay import Replay, build_replay, weight_sparsity
from compiler.cli import main
from compiler.exec.train import TrainConfig
from compiler.ir import Graph
from tests.compiler.audit.conftest import QUIET

FAST_SHADOWS = TrainConfig(epochs=30, lr=3e-3, batch_size=64)


@pytest.fixture(scope="module")
def pruned_build(overfit_build, tmp_path_factory):
    """The overfit MLP, 90% of every layer pruned by magnitude (dead neurons kept, so exactly 90%)."""
    _, data_path = overfit_build
    folder = tmp_path_factory.mktemp("pruned")
    recipe = folder / "recipe.toml"
    recipe.write_text(
        'passes = ["canonicalize", "magnitude_prune", "lower"]\n'
        "[magnitude_prune]\nsparsity = 0.9\nepochs = 20\nremove_dead = false\n"
    )
    model = data_path.parent / "overfit.onnx"
    api.compile(model, data_path, folder / "build", recipe=recipe, synth_timeout=None, **QUIET)
    return folder / "build"


@pytest.fixture(scope="module")
def pruned_audit(pruned_build):
    return api.audit(
        pruned_build, attacks="loss_threshold,lira_online", shadows=2, shadow_training=FAST_SHADOWS,
        adaptive=True, **QUIET,
    )  # fmt: skip


def test_shadows_of_a_90_percent_pruned_build_are_90_percent_sparse(pruned_build, pruned_audit):
    target = weight_sparsity(Graph.load(pruned_build))
    assert target == pytest.approx(0.9, abs=0.01)
    shadows = pruned_audit["shadow_models"]
    assert shadows["mean_weight_sparsity"] < 0.05  # the plain shadows: dense
    replayed = shadows["replayed"]
    assert list(replayed) == ["02-magnitude_prune", "03-lower"]  # plan changes no output: not replayed
    for stage in replayed.values():
        assert stage["count"] == 2
        assert stage["mean_weight_sparsity"] == pytest.approx(target, abs=0.01)
    assert pruned_audit["settings"]["adaptive_replay"]["passes"] == ["magnitude_prune", "lower"]
    assert pruned_audit["settings"]["adaptive_replay"]["recipe"]["magnitude_prune"]["sparsity"] == 0.9


def test_adaptive_attacks_beside_the_plain_ones(pruned_build, pruned_audit):
    assert pruned_audit["adaptive"] is True
    for name in ("original", "compiled"):
        target = pruned_audit["targets"][name]
        assert set(target["adaptive_attacks"]) == set(target["attacks"]) == {"loss_threshold", "lira_online"}
        assert set(target["adaptive_attacks"]["lira_online"]) == set(target["attacks"]["lira_online"])
    # the original model is a plainly trained one: its adaptive shadows are the plain shadows
    original = pruned_audit["targets"]["original"]
    assert original["adaptive_attacks"] == original["attacks"]
    # the compiled one is calibrated on pruned, quantized shadows: other thresholds, other numbers
    compiled = pruned_audit["targets"]["compiled"]
    assert compiled["adaptive_attacks"]["lira_online"] != compiled["attacks"]["lira_online"]
    assert (pruned_build / "audit_roc_compiled_adaptive.png").is_file()
    report = (pruned_build / "report.md").read_text()
    assert "adaptive AUC" in report and "magnitude_prune, lower" in report


def test_default_is_adaptive_only_when_the_replay_trains_nothing(overfit_build, overfit_audit, pruned_build):
    # the overfit build is canonicalize, lower, plan: its replay (lower) is cheap, so on by default
    assert overfit_audit["adaptive"] is True
    assert overfit_audit["settings"]["adaptive_replay"]["passes"] == ["lower"]
    assert "adaptive_attacks" in overfit_audit["targets"]["compiled"]
    # the pruned build would retrain every shadow: off unless asked
    plain = api.audit(
        pruned_build, attacks="loss_threshold", shadows=2, shadow_training=FAST_SHADOWS, write=False, **QUIET
    )
    assert plain["adaptive"] is False and plain["settings"]["adaptive_replay"] is None
    assert "adaptive_attacks" not in plain["targets"]["compiled"]
    assert "replayed" not in plain["shadow_models"]


def test_the_replay_reads_the_flow_and_recipe_of_the_build(pruned_build):
    replay = build_replay(pruned_build, "checkpoints/01-canonicalize")
    assert replay.passes == ("magnitude_prune", "lower") and replay.trains
    assert replay.stages == ("02-magnitude_prune", "03-lower")
    # from the import, canonicalize is replayed too
    assert build_replay(pruned_build, "checkpoints/00-import").passes == ("canonicalize", "magnitude_prune", "lower")


@pytest.mark.parametrize(
    "source, stage",
    [
        (".", "03-lower"),
        ("checkpoints/04-plan", "03-lower"),
        ("checkpoints/03-lower", "03-lower"),
        ("checkpoints/02-magnitude_prune", "02-magnitude_prune"),
        ("checkpoints/01-canonicalize", "01-canonicalize"),
        ("checkpoints/00-import", "01-canonicalize"),
    ],
)
def test_each_target_gets_the_shadows_built_to_its_checkpoint(source, stage):
    replay = Replay("01-canonicalize", ("magnitude_prune", "lower"), ("02-magnitude_prune", "03-lower"), "{}", "fpga")
    assert replay.stage_for(source) == stage


def test_a_build_without_a_recorded_recipe(overfit_build, tmp_path):
    out, _ = overfit_build
    shutil.copytree(out, tmp_path / "build")
    report_path = tmp_path / "build" / "report.json"
    report = json.loads(report_path.read_text())
    del report["recipe"]
    report_path.write_text(json.dumps(report))
    with pytest.raises(api.MpcError, match="no recipe recorded.*recompile"):
        api.audit(tmp_path / "build", attacks="loss_threshold", shadows=2, adaptive=True, write=False, **QUIET)
    quiet = api.audit(
        tmp_path / "build", attacks="loss_threshold", shadows=2, shadow_training=FAST_SHADOWS, write=False, **QUIET
    )
    assert quiet["adaptive"] is False  # auto: the audit it can do


def test_adaptive_needs_an_attack_with_shadows(overfit_build):
    out, _ = overfit_build
    with pytest.raises(api.MpcError, match="--adaptive replays the recipe on shadow models"):
        api.audit(out, attacks="label_only", adaptive=True, write=False, **QUIET)


def test_cli_no_adaptive(build_copy, capsys):
    out, _ = build_copy
    code = main(["audit", str(out), "--attacks", "loss_threshold", "--shadows", "2", "--shadow-epochs", "5",
                 "--no-adaptive", "--quiet"])  # fmt: skip
    assert code == 0
    assert json.loads((out / "audit.json").read_text())["adaptive"] is False
    assert "compiled, adaptive:" not in capsys.readouterr().out


def test_replayed_lower_matches_the_build_on_the_same_weights(overfit_build):
    """The replayed lower of a shadow is the build's lower: run on the build's own float
    checkpoint with the build's data, it gives the compiled model's outputs exactly."""
    from compiler.audit.replay import replay
    from compiler.data import load_data
    from compiler.exec import golden

    out, data_path = overfit_build
    plan = build_replay(out, "checkpoints/01-canonicalize")
    canonical = Graph.load(out / "checkpoints" / "01-canonicalize")
    data = load_data(data_path, canonical.inputs[0].shape, 10)
    stages = dict(replay(canonical, plan, data.x_train, data.y_train, data.x_test, data.y_test, seed=0))
    compiled = Graph.load(out)
    x = data.x_test[:50]
    assert np.array_equal(golden.run(stages["02-lower"], x).logits, golden.run(compiled, x).logits)


def test_builds_of_one_model_share_the_plain_shadows(overfit_build, pruned_build):
    """Through a shadow cache (benchmarks), each build's recipe replays on the same plain shadows:
    they are trained once, and their numbers are those of an audit without the cache."""
    cache: dict = {}
    options = {"attacks": "loss_threshold", "shadows": 2, "shadow_training": FAST_SHADOWS, "write": False, **QUIET}
    pruned = api.audit(pruned_build, adaptive=True, shadow_cache=cache, **options)
    quantized = api.audit(overfit_build[0], adaptive=True, shadow_cache=cache, **options)
    plain_keys = [k for k in cache if not isinstance(k[0], tuple)]
    assert len(plain_keys) == 1 and len(cache) == 3  # one plain set, two replays of it
    assert pruned["shadow_models"]["mean_train_accuracy"] == quantized["shadow_models"]["mean_train_accuracy"]
    alone = api.audit(pruned_build, adaptive=True, **options)
    assert alone["targets"]["compiled"]["adaptive_attacks"] == pruned["targets"]["compiled"]["adaptive_attacks"]


def test_an_infinite_epsilon_survives_report_json_and_the_replay(overfit_build, tmp_path):
    """TOML's inf (dp_sgd's no-noise control) is written as strict JSON and replayed as inf."""
    _, data_path = overfit_build
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('passes = ["canonicalize", "dp_sgd", "lower"]\n[dp_sgd]\nepsilon = inf\nepochs = 1\n')
    out = tmp_path / "build"
    api.compile(data_path.parent / "overfit.onnx", data_path, out, recipe=recipe, synth_timeout=None, **QUIET)

    def refuse(constant):
        raise ValueError(f"report.json holds {constant}, which is not JSON")

    report = json.loads((out / "report.json").read_text(), parse_constant=refuse)
    assert report["recipe"]["dp_sgd"]["epsilon"] == "inf"
    assert build_replay(out, "checkpoints/01-canonicalize").recipe["dp_sgd"]["epsilon"] == float("inf")
