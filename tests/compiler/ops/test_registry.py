"""The op registry (compiler/ops/): every IR op is defined once, in one ops module, with the
members its kind needs; the executors, the ONNX backend and lower keep no op table of their own."""

import ast
from pathlib import Path

import pytest

from compiler import ir, ops
from compiler.ops.base import MEMBERS, Op

ROOT = Path(__file__).resolve().parents[3]
WALKERS = [
    "compiler/exec/golden.py",
    "compiler/exec/torch.py",
    "compiler/exec/gradient.py",
    "compiler/backends/onnx.py",
    "compiler/passes/lower.py",
]
# The float ops lower turns into integer nodes (the trailing softmax is dropped, the rest are
# folded by canonicalize or refused). The joins (add, concat) since lower walks a DAG (issue 27).
LOWERED = {"dense", "relu", "flatten", "conv2d", "add", "concat", *ir.POOL_OPS, *ir.ACTIVATION_OPS}


def test_the_registry_holds_exactly_the_ir_ops():
    assert set(ops.names()) == ir.OPS
    assert all(ops.get(name).name == name for name in ops.names())


@pytest.mark.parametrize("name", sorted(ir.INTEGER_OPS))
def test_every_integer_op_has_a_golden_step_a_stand_in_and_an_onnx_emitter(name):
    op = ops.get(name)
    assert op.defines("golden") and op.defines("stand_in") and op.defines("emit")


@pytest.mark.parametrize("name", sorted(ir.FLOAT_OPS))
def test_every_float_op_has_a_forward(name):
    assert ops.get(name).defines("forward")


def test_every_float_op_lower_accepts_has_a_lowering_rule_and_no_other_op_has_one():
    assert {name for name in ops.names() if ops.get(name).defines("lower")} == LOWERED


def test_the_ops_lower_refuses_by_name_are_the_ones_with_no_integer_form():
    # batchnorm: canonicalize left it unfolded (a join lowers since lower walks a DAG)
    assert {name for name in ops.names() if ops.get(name).unlowerable} == {"batchnorm"}
    assert "{names}" in ops.get("batchnorm").unlowerable


def test_the_op_attributes_agree_with_the_ir_groups():
    assert {n for n in ops.names() if ops.get(n).layer} == set(ir.LAYER_OPS)
    assert {n for n in ops.names() if ops.get(n).dropped_at_output} == set(ir.SOFTMAX_OPS)
    assert [n for n in ops.names() if ops.get(n).ends_graph] == ["dequantize"]
    assert {n for n in ops.names() if ops.get(n).wraps} == {"dense", "conv2d"}


def test_an_op_registered_twice_or_without_a_name_is_refused():
    class Again(Op):
        name = "dense"

    class Nameless(Op):
        pass

    for cls in (Again, Nameless):
        with pytest.raises(ValueError, match="missing or registered twice"):
            ops.register(cls)
    with pytest.raises(ValueError, match="unknown op member"):
        Op.defines("execute")
    assert set(MEMBERS) >= {"golden", "forward", "stand_in", "emit", "lower"}


# ---- no op table outside compiler/ops ---------------------------------------------------------
def _op_literals(node: ast.AST) -> list[str]:
    """The IR op names written as string literals in `node` (a constant or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ir.OPS:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [name for element in node.elts for name in _op_literals(element)]
    return []


def op_tables(source: str) -> list[str]:
    """Every place `source` branches on or indexes by an op name of its own: a dict keyed by op
    names (two or more), a comparison or membership test against op-name literals, a `match` case on one, a
    `_lower_<op>` method or a getattr of one."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            # two op names at least: a requantize's attrs have the key "relu", which is no table
            keys = [name for key in node.keys if key is not None for name in _op_literals(key)]
            if len(keys) > 1:
                found.append(f"line {node.lineno}: a dict keyed by op names {keys}")
        elif isinstance(node, ast.Compare):
            names = [name for side in (node.left, *node.comparators) for name in _op_literals(side)]
            if names:
                found.append(f"line {node.lineno}: a comparison with op names {names}")
        elif isinstance(node, ast.MatchValue) and _op_literals(node.value):
            found.append(f"line {node.lineno}: a match case on op name {_op_literals(node.value)}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_lower_"):
            found.append(f"line {node.lineno}: a lowering method {node.name}")
        elif isinstance(node, ast.Name) and node.id.startswith("_lower_"):
            found.append(f"line {node.lineno}: a lowering method {node.id}")
        elif isinstance(node, ast.JoinedStr) and any(
            isinstance(v, ast.Constant) and str(v.value).startswith("_lower_") for v in node.values
        ):
            found.append(f"line {node.lineno}: a lowering method looked up by name")
    return found


@pytest.mark.parametrize("path", WALKERS)
def test_the_executors_the_onnx_backend_and_lower_keep_no_op_table_of_their_own(path):
    assert op_tables((ROOT / path).read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        '_STEP = {"dense": lambda g, n, x: x, "flatten": None}',
        'if node.op == "dequantize":\n    pass',
        'ok = node.op in ("dense", "conv2d")',
        'match node.op:\n    case "relu":\n        pass',
        "class L:\n    def _lower_dense(self, node):\n        pass",
        'getattr(self, f"_lower_{node.op}")(node)',
    ],
)
def test_the_check_finds_an_op_table_added_back(source):
    assert op_tables(source) != []


def test_the_check_leaves_other_string_literals_alone():
    assert op_tables('if graph.meta.get("input_layout") == "nhwc":\n    x = {"shape": 1}') == []
