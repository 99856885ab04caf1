"""The design's last stage (rtl/argmax.v): it collects the N logits of an inference and emits
them with their argmax in one beat. Not an engine of a layer (every design ends in exactly one),
so it is not registered; its timing model and its instance in the top live here.
"""

from __future__ import annotations

MODULE = "argmax.v"


class Argmax:
    """rtl/argmax.v: in_ready = !full; the beat leaves the edge after the N-th logit."""

    def __init__(self, n: int):
        self.n, self.count, self.full = n, 0, False

    def in_ready(self) -> bool:
        return not self.full

    def out_valid(self) -> bool:
        return self.full

    def step(self, accept: bool, out_ready: bool) -> None:
        if accept:
            self.count += 1
            if self.count == self.n:
                self.count, self.full = 0, True
        elif self.full and out_ready:
            self.full = False


ARGMAX_EDGES = 1  # rtl/argmax.v registers the result one edge after the last logit


def instance_lines(n_classes: int, logit_bits: int, idx_bits: int, upstream: tuple[str, str, str]) -> list[str]:
    """rtl/argmax.v instantiated as `collect`, fed by the last engine's (valid, ready, data)."""
    valid, ready, data = upstream
    return [
        f"    argmax #(.N({n_classes}), .W({logit_bits}), .IDX_BITS({idx_bits})) collect (",
        f"        .clk(clk), .rst(rst), .in_valid({valid}), .in_ready({ready}), .in_data({data}),",
        "        .out_valid(out_valid), .out_ready(out_ready), .out_logits(out_logits), .out_argmax(out_argmax));",
    ]
