"""Small planned integer graphs that branch (a fork and a residual `add`), built by hand as
`lower` and `plan` would emit them, with random weights: for the DAG hardware's tests (the
Verilog top's forks and join FIFOs, compiler/hw/dag_timing.py), independent of lowering.

    residual_cnn((2, 6, 6), channels=4)

    quantize -> conv c0 (+requantize ReLU) -+-> conv main (+requantize) -----------+-> add (ReLU) -> ...
                                            +-> [skip: nothing, or a 1x1 conv] ----+
             ... -> global_avgpool -> flatten -> dense (raw accumulators) -> dequantize

Every activation is Q(8, 5) (benchmarks/cnn_graphs.py's ACT), so the add aligns nothing
(shift_a = shift_b = 0) and its output shift is 0: it sums, saturates and cuts at zero.
"""

from __future__ import annotations

import kernels
from benchmarks.cnn_graphs import ACT, WEIGHT, _Builder, conv, dense, global_avgpool
from compiler.ir import Graph, Node, TensorSpec


def _join(b: _Builder, name: str, a: tuple, other: tuple, relu: bool = True) -> None:
    """An integer add of stream `a` (tensor, sample) and `other`, both Q(8, 5), out Q(8, 5)."""
    attrs = {
        "shift_a": 0,
        "shift_b": 0,
        "shift": 0,
        "bits": ACT.bits,
        "relu": relu,
        "input_formats": [ACT.to_dict(), ACT.to_dict()],
        "format": ACT.to_dict(),
    }
    node = Node("add", name, [a[0], other[0]], [f"{name}_out"], attrs=attrs, annotations={"engine": "add"})
    b.emit(node, kernels.add(a[1], other[1], 0, 0, 0, ACT.bits, relu), b.shape)


def residual_cnn(
    in_shape=(2, 6, 6), channels: int = 4, classes: int = 5, p_co: int = 1, skip_conv: bool = False, blocks: int = 1,
    seed: int = 0, stem: bool = True, main_convs: int = 1, downsample: tuple = (),
) -> Graph:  # fmt: skip
    """conv c0 (none without `stem`: the first block forks the design's input, of `channels`
    channels), then `blocks` residual blocks (a conv on the main branch; on the skip nothing, or
    a 1x1 conv with `skip_conv`), then global average pooling and a dense layer of `classes`.
    `main_convs`: convs on each main branch (ResNet's basic block: 2, the first with ReLU);
    `downsample`: the blocks (by index) that double the channels and halve the image, as ResNet-8's
    second and third (stride 2 on the first main conv, a 1x1 stride-2 conv on the skip)."""
    b = _Builder(in_shape, seed)
    if stem:
        b.conv("c0", conv(channels, p_co=p_co), last=False)
    for k in range(blocks):
        fork, fork_sample, shape = b.cur, b.sample, b.shape
        stride = 2 if k in downsample else 1
        channels *= stride
        for j in range(main_convs):
            last_conv = j == main_convs - 1
            spec = conv(channels, stride=stride if j == 0 else 1, p_co=p_co, relu=not last_conv)
            b.conv(f"b{k}_main" + (f"{j}" if main_convs > 1 else ""), spec, last=False)
        main, main_shape = (b.cur, b.sample), b.shape
        skip = (fork, fork_sample)
        if skip_conv or stride > 1:
            b.cur, b.sample, b.shape = fork, fork_sample, shape
            b.conv(f"b{k}_skip", conv(channels, k=1, pad=0, stride=stride, p_co=p_co, relu=False), last=False)
            skip = (b.cur, b.sample)
        b.shape = main_shape
        _join(b, f"b{k}_add", main, skip)
    b.pool("gap", global_avgpool())
    b.flatten("flat")
    b.dense("fc", dense(classes, multipliers=2), last=True)
    out_frac = ACT.frac + WEIGHT.frac
    b.nodes.append(Node("dequantize", "dequantize_output", [b.cur], ["logits"], attrs={"frac": out_frac}))
    graph = Graph(
        inputs=[TensorSpec("x", tuple(in_shape))],
        outputs=[TensorSpec("logits", (classes,))],
        nodes=b.nodes,
        params=b.params,
        meta={
            "integer": True,
            "planned": True,
            "input_format": ACT.to_dict(),
            "output_format": {"bits": b.nodes[-2].attrs["acc_bits"], "frac": out_frac},
        },
    )
    graph.validate()
    return graph


__all__ = ["residual_cnn"]
