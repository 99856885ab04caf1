// add: the residual join of two activation streams, exactly as docs/fixed-point.md
// ("add (residual join)"):
//
//   s = a * 2**SHIFT_A + b * 2**SHIFT_B      (exact, in SUM_BITS = max(A_BITS + SHIFT_A, B_BITS + SHIFT_B) + 1 bits)
//   y = requantize(s, SHIFT, OUT_BITS, RELU) (rtl/requantize.v: round half up, saturate, ReLU)
//
// The golden model is kernels.add (kernels/add.py).
//
// Streams: two inputs, a and b, carrying the two tensors' elements in the same order, and one
// output. A pair (one element of each) is taken at an edge where in_a_valid and in_b_valid are
// both high and the output FIFO has room; both handshakes complete at that edge, never one alone:
// in_a_ready = room && in_b_valid, in_b_ready = room && in_a_valid. So each ready follows the
// *other* input's valid combinationally (never its own valid, never out_ready): a producer must
// raise valid without waiting for ready, as every engine of the library does.
//
// Timing contract (rtl/activation.v's; kernels.add.AddSchedule): the pair's result enters a
// 2-entry output FIFO (rtl/fifo2.v) at the edge the pair is accepted and can leave at the next edge (one edge
// of latency). room = (FIFO holds fewer than 2 elements) is a register, so no combinational path
// runs from out_ready to either ready; with both inputs valid and out_ready high the engine takes
// and emits one pair every edge (full rate), and it absorbs one edge of back-pressure before its
// readies fall. out_data is the FIFO's head (meaningful only with out_valid); it holds while
// out_valid && !out_ready. Reset (synchronous, active high) empties the FIFO.
`default_nettype none
module add #(
    parameter A_BITS   = 8,
    parameter B_BITS   = 8,
    parameter SHIFT_A  = 0,
    parameter SHIFT_B  = 0,
    parameter SHIFT    = 1,
    parameter OUT_BITS = 8,
    parameter RELU     = 0
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       in_a_valid,
    output wire                       in_a_ready,
    input  wire signed [A_BITS-1:0]   in_a_data,
    input  wire                       in_b_valid,
    output wire                       in_b_ready,
    input  wire signed [B_BITS-1:0]   in_b_data,
    output wire                       out_valid,
    input  wire                       out_ready,
    output wire signed [OUT_BITS-1:0] out_data
);
    localparam WIDE_A   = A_BITS + SHIFT_A;
    localparam WIDE_B   = B_BITS + SHIFT_B;
    localparam SUM_BITS = ((WIDE_A > WIDE_B) ? WIDE_A : WIDE_B) + 1;  // no inputs in range overflow it

    // Align: sign-extend to the sum's width, then shift left (exact: SUM_BITS holds both).
    wire signed [SUM_BITS-1:0] a_wide = {{(SUM_BITS - A_BITS){in_a_data[A_BITS-1]}}, in_a_data};
    wire signed [SUM_BITS-1:0] b_wide = {{(SUM_BITS - B_BITS){in_b_data[B_BITS-1]}}, in_b_data};
    wire signed [SUM_BITS-1:0] sum    = (a_wide <<< SHIFT_A) + (b_wide <<< SHIFT_B);
    wire signed [OUT_BITS-1:0] y;

    requantize #(
        .ACC_BITS(SUM_BITS),
        .OUT_BITS(OUT_BITS),
        .SHIFT   (SHIFT),
        .RELU    (RELU)
    ) u_requantize (
        .acc(sum),
        .y  (y)
    );

    wire room;

    assign in_a_ready = room && in_b_valid;
    assign in_b_ready = room && in_a_valid;

    fifo2 #(
        .WIDTH(OUT_BITS)
    ) u_out (
        .clk      (clk),
        .rst      (rst),
        .push     (in_a_valid && in_b_valid && room),  // a pair, both handshakes at once
        .data     (y),
        .room     (room),
        .out_valid(out_valid),
        .out_ready(out_ready),
        .out_data (out_data)
    );
endmodule
`default_nettype wire
