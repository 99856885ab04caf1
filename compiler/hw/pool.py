"""The pooling engine (rtl/pool2d.v): max or average over a window, line-buffered like the
convolution engine (kernels.pool2d.pool_geometry), one window element per cycle, no ROM and no
multiplier. Its schedule is fixed, so the cycle budget of the other layers rises to it.
"""

from __future__ import annotations

from compiler.hw.base import Engine, EngineSpec, Planned, VerilogBackendError, stream_spec
from compiler.hw.conv import check_window, checked_out_shape, describe_line, line_cost, window_parameters
from compiler.hw.registry import register
from compiler.ir import POOL_OPS, Node
from kernels.conv2d import LineGeometry
from kernels.pool2d import pool_geometry


def pool_cost(stage: LineGeometry):
    """No ROM, one window element per cycle."""
    return line_cost("pool", stage, 0, 0)


def node_geometry(node: Node) -> LineGeometry:
    a = node.attrs
    return pool_geometry(a["in_shape"], a["kernel"], a["stride"], a["pads"])


@register
class Pool(Engine):
    kind = "pool"
    ops = POOL_OPS
    module = "pool2d.v"
    plan_fields = {}
    rom_streaming = False

    def fixed_interval(self, graph, node):
        return node_geometry(node).compute_cycles

    def plan(self, graph, node, budget, multipliers, largest):
        g = node_geometry(node)
        return Planned(self.kind, {"engine": self.kind}, 0, g.compute_cycles, 0)

    def spec(self, graph, node, follow, index, image):
        a = node.attrs
        check_window(node, image)
        if node.op == "avgpool2d" and not a.get("count_include_pad", True) and any(a["pads"]):
            raise VerilogBackendError(
                f"node {node.name!r}: average pooling with count_include_pad = 0 and padding "
                f"{list(a['pads'])} has no engine (rtl/pool2d.v divides every window by "
                "kH*kW, which is count_include_pad = 1)"
            )
        stage = node_geometry(node)
        bits = a["format"]["bits"]
        spec = stream_spec(node, index, self.kind, stage, bits, bits, out_shape=checked_out_shape(node, stage))
        spec.cost = pool_cost(stage)
        spec.parameters = (
            {"C": stage.c_in, "H": stage.h, "W": stage.w}
            | window_parameters(stage)
            | {"MODE": 0 if node.op == "maxpool2d" else 1, "IN_BITS": bits}
        )
        return spec

    def describe(self, spec: EngineSpec) -> str:
        return describe_line(spec)
