"""SPACE.toml: axes, points, ids, objectives, settings, and the errors that name the key."""

import tomllib

import pytest

from compiler.explore.metrics import MAX, MIN, ObjectiveError, flatten, parse_objective, point_metrics
from compiler.explore.space import SpaceError, dump_toml, load_space


def space(tmp_path, text):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return load_space(path)


def test_grid_axes_and_points(tmp_path):
    sp = space(
        tmp_path,
        """passes = ["canonicalize", "admm", "lower"]
[admm]
sparsity = [0.5, 0.8, 0.9]
bits = [8, 4]
admm_epochs = 3
[admm.layers."/5/Gemm"]
sparsity = [0.1, 0.2]
[explore]
objectives = ["accuracy", "lut"]
target = ["fpga", "asic"]
""",
    )
    assert [a.name for a in sp.axes] == ["admm.sparsity", "admm.bits", 'admm.layers."/5/Gemm".sparsity', "target"]
    assert sp.size == 3 * 2 * 2 * 2
    points = list(sp.points())
    assert len(points) == 24 and len({p.id for p in points}) == 24
    first, last = points[0], points[-1]
    assert first.recipe == {
        "passes": ["canonicalize", "admm", "lower"],
        "admm": {"sparsity": 0.5, "bits": 8, "admm_epochs": 3, "layers": {"/5/Gemm": {"sparsity": 0.1}}},
    }
    assert first.target == "fpga" and last.target == "asic"
    assert last.values == {
        "admm.sparsity": 0.9,
        "admm.bits": 4,
        'admm.layers."/5/Gemm".sparsity': 0.2,
        "target": "asic",
    }
    assert sp.run.synth  # lut comes from yosys
    # the same space read again: the same ids (they name the builds across runs)
    assert [p.id for p in space(tmp_path, (tmp_path / "space.toml").read_text()).points()] == [p.id for p in points]


def test_list_of_lists_is_an_axis_of_flows(tmp_path):
    sp = space(tmp_path, 'passes = [["canonicalize", "lower"], ["canonicalize", "admm", "lower"]]\n')
    assert [a.name for a in sp.axes] == ["passes"]
    assert [p.recipe["passes"] for p in sp.points()] == [["canonicalize", "lower"], ["canonicalize", "admm", "lower"]]
    plain = space(tmp_path, 'passes = ["canonicalize", "lower"]\n[lower]\nweight_bits = 6\n')
    assert plain.axes == [] and plain.size == 1 and next(plain.points()).recipe["passes"] == ["canonicalize", "lower"]


def test_id_depends_on_what_decides_the_build(tmp_path):
    base = "[lower]\nweight_bits = [8, 4]\n"
    ids = [p.id for p in space(tmp_path, base).points()]
    assert ids != [p.id for p in space(tmp_path, base + "[explore]\nseed = 1\n").points()]
    assert ids != [p.id for p in space(tmp_path, base + "[explore]\nsimulate = 8\n").points()]
    assert ids != [p.id for p in space(tmp_path, base + '[explore]\ntarget = "asic"\n').points()]
    assert ids == [p.id for p in space(tmp_path, base + '[explore]\nobjectives = ["accuracy"]\n').points()]


def test_recipe_toml_round_trip():
    doc = {
        "passes": ["canonicalize", "admm", "lower"],
        "admm": {
            "sparsity": 0.95,
            "rho": 1e-08,
            "remove_dead": False,
            "structure": "filters",
            "layers": {'/odd "name"\n': {"bits": 3}, "/5/Gemm": {"sparsity": 0.5}},
        },
        "plan": {"multipliers": 16},
    }
    text = dump_toml(doc)
    assert tomllib.loads(text) == doc


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[lower]\nweight_bits = []\n", "[lower] weight_bits: an empty list"),
        ("[lower]\nweight_bits = [8, 8]\n", "[lower] weight_bits: a value is listed twice"),
        ("[explore]\nfoo = 1\n", "[explore] foo: unknown key"),
        ('[explore]\nobjectives = ["accuracy", "accuracy"]\n', "listed twice"),
        ('[explore]\nobjectives = ["hardware.nonsense"]\n', "unknown objective 'hardware.nonsense'"),
        ('[explore]\nobjectives = ["min:nowhere.x"]\n', "a metric is a dotted key of report.json"),
        ('[explore]\nobjectives = ["lut"]\nsynth = false\n', "[explore] synth: false, but"),
        ('[explore]\nobjectives = ["simulation.cycles_per_inference"]\nsimulate = 0\n', "[explore] simulate: 0"),
        ('[explore]\nobjectives = ["lira_tpr"]\n[explore.audit]\nattacks = "loss_threshold"\n', "lira_online"),
        ('[explore]\nobjectives = ["lira_tpr"]\n[explore.audit]\nshadows = 1\n', "[explore] audit.shadows"),
        ("[explore]\nseed = -1\n", "[explore] seed"),
        ("[lower\n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, text, fragment):
    with pytest.raises(SpaceError) as e:
        space(tmp_path, text)
    message = str(e.value)
    assert message.startswith(str(tmp_path / "space.toml")) and fragment in message and "\n" not in message


def test_audit_settings_follow_the_objectives(tmp_path):
    sp = space(tmp_path, '[explore]\nobjectives = ["accuracy", "lira_tpr"]\n[explore.audit]\nshadows = 4\n')
    assert sp.run.audit == {
        "attacks": ["lira_online"],
        "targets": ["compiled"],
        "shadows": 4,
        "shadow_training": {"epochs": 60, "lr": 3e-3, "batch_size": 64},
    }
    assert space(tmp_path, '[explore]\nobjectives = ["accuracy"]\n').run.audit is None


def test_objectives_and_directions():
    assert parse_objective("accuracy").key == "compiled.test_accuracy" and parse_objective("accuracy").direction == MAX
    assert parse_objective("energy").direction == MIN and parse_objective("hardware.lut").direction == MIN
    assert parse_objective("model.compression_ratio").direction == MAX
    o = parse_objective("audit.compiled.lira_online.tpr_at_1pct_fpr")
    assert o.direction == MIN and o.attack == ("compiled", "lira_online")
    assert parse_objective("max:hardware.synthesis.seconds").direction == MAX
    assert parse_objective("min:accuracy").direction == MIN  # a prefix overrides the known direction
    for bad in ("", "hardware.nonsense", "audit.compiled.nonsense.auc", "x"):
        with pytest.raises(ObjectiveError):
            parse_objective(bad)


def test_metrics_flatten_report_and_audit():
    report = {
        "created": "now",
        "layers": [{"x": 1}],
        "compiled": {"test_accuracy": 0.9, "onnx_matches_golden": {"identical": True}},
        "hardware": {"lut": None, "energy_pj": {"compiled": 12.5}, "energy_model": {"table": 1}},
    }
    audit = {"targets": {"compiled": {"test_accuracy": 0.9, "attacks": {"lira_online": {"auc": 0.6, "note": None}}}}}
    assert point_metrics(report, audit) == {
        "compiled.test_accuracy": 0.9,
        "compiled.onnx_matches_golden.identical": True,
        "hardware.lut": None,
        "hardware.energy_pj.compiled": 12.5,
        "audit.compiled.test_accuracy": 0.9,
        "audit.compiled.train_accuracy": None,
        "audit.compiled.lira_online.auc": 0.6,
        "audit.compiled.lira_online.note": None,
    }
    assert flatten({"a": {"b": "x" * 100}}) == {}
