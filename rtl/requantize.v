// requantize: accumulator -> activation, exactly as docs/fixed-point.md ("requantize"):
//
//   t = floor((acc + 2**(SHIFT-1)) / 2**SHIFT)   if SHIFT > 0   (round half up)
//   t = acc                                      if SHIFT == 0
//   y = clip(t, -2**(OUT_BITS-1), 2**(OUT_BITS-1) - 1)
//   y = max(y, 0)                                if RELU
//
// Purely combinational. The golden model is kernels/requantize.py.
module requantize #(
    parameter ACC_BITS = 24,
    parameter OUT_BITS = 8,
    parameter SHIFT    = 7,
    parameter RELU     = 1
) (
    input  wire signed [ACC_BITS-1:0] acc,
    output wire signed [OUT_BITS-1:0] y
);
    // Work width: wide enough for acc + 2**(SHIFT-1) (no overflow, even for SHIFT > ACC_BITS)
    // and for every OUT_BITS value, so the rounding add and the clip compares are exact.
    localparam WIDE_A = (ACC_BITS > SHIFT) ? ACC_BITS : SHIFT;
    localparam WIDE   = ((WIDE_A > OUT_BITS) ? WIDE_A : OUT_BITS) + 1;

    localparam signed [WIDE-1:0] ONE     = 1;
    localparam signed [WIDE-1:0] OUT_MAX = (ONE <<< (OUT_BITS - 1)) - ONE;
    localparam signed [WIDE-1:0] OUT_MIN = -(ONE <<< (OUT_BITS - 1));
    // ReLU after the clip equals a clip with lower bound 0, because OUT_MAX >= 0.
    localparam signed [WIDE-1:0] LOWER   = (RELU != 0) ? {WIDE{1'b0}} : OUT_MIN;

    wire signed [WIDE-1:0] acc_wide = {{(WIDE - ACC_BITS){acc[ACC_BITS-1]}}, acc};
    wire signed [WIDE-1:0] t;

    generate
        if (SHIFT > 0) begin : g_round
            localparam signed [WIDE-1:0] HALF = ONE <<< (SHIFT - 1);
            wire signed [WIDE-1:0] biased = acc_wide + HALF;
            assign t = biased >>> SHIFT;  // arithmetic shift = floor division by 2**SHIFT
        end else begin : g_exact
            assign t = acc_wide;
        end
    endgenerate

    assign y = (t > OUT_MAX) ? OUT_MAX[OUT_BITS-1:0] :
               (t < LOWER)   ? LOWER[OUT_BITS-1:0]   :
                               t[OUT_BITS-1:0];
endmodule
