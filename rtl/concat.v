// concat: two activation streams joined along the channel axis, exactly as docs/fixed-point.md
// ("concat (channel join)"):
//
//   y = concat(requantize(a, SHIFT_A, OUT_BITS, relu=0), requantize(b, SHIFT_B, OUT_BITS, relu=0))
//
// each input brought to the common (coarser) format by rtl/requantize.v's round half up (it never
// saturates there; the clip is kept so that all implementations state one function). The golden
// model is kernels.concat (kernels/concat.py).
//
// Streams: a carries C_A elements per pixel and b C_B, channel-last images of one H x W (or plain
// vectors: one "pixel" of C_A = len(a), C_B = len(b) elements). The output streams, for every
// pixel, a's C_A elements, then b's C_B (kernels.concat.concat_stream_order). The engine counts
// the elements of the current pixel: while a's are due only in_a_ready can be high, while b's
// are due only in_b_ready. Both readies are registered state (the phase and the FIFO's room):
// no combinational path from any valid or out_ready to them, and a producer must raise valid
// without waiting for ready, as every engine of the library does. An input whose turn it is not
// simply waits (its valid held); the other input's turn never depends on it.
//
// Timing contract (rtl/activation.v's, kernels.concat.ConcatSchedule): one element of the joined
// stream is taken at an edge where the due input is valid and the 2-entry output FIFO
// (rtl/fifo2.v) has room; it can leave at the next edge (one edge of latency). With the due input
// always valid and out_ready high the engine takes and emits one element every edge (full rate,
// no bubble at the a/b turns); it absorbs one edge of back-pressure before its readies fall.
// out_data is the FIFO's head (meaningful only with out_valid); it holds while
// out_valid && !out_ready. Reset (synchronous, active high) empties the FIFO and returns to a's
// first element of a pixel.
`default_nettype none
module concat #(
    parameter A_BITS   = 8,
    parameter B_BITS   = 8,
    parameter C_A      = 4,  // a's elements per pixel
    parameter C_B      = 4,  // b's elements per pixel
    parameter SHIFT_A  = 0,
    parameter SHIFT_B  = 0,
    parameter OUT_BITS = 8
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
    localparam C_MAX    = (C_A > C_B) ? C_A : C_B;
    localparam CNT_BITS = (C_MAX > 1) ? $clog2(C_MAX) : 1;
    localparam integer LAST_A = C_A - 1;  // the last element of a pixel's a (b) part
    localparam integer LAST_B = C_B - 1;

    // Each input in the common format (round half up by its shift; the coarser one passes).
    wire signed [OUT_BITS-1:0] a_out;
    wire signed [OUT_BITS-1:0] b_out;

    requantize #(
        .ACC_BITS(A_BITS),
        .OUT_BITS(OUT_BITS),
        .SHIFT   (SHIFT_A),
        .RELU    (0)
    ) u_align_a (
        .acc(in_a_data),
        .y  (a_out)
    );

    requantize #(
        .ACC_BITS(B_BITS),
        .OUT_BITS(OUT_BITS),
        .SHIFT   (SHIFT_B),
        .RELU    (0)
    ) u_align_b (
        .acc(in_b_data),
        .y  (b_out)
    );

    reg                on_b;   // 0: a pixel's a-elements are due, 1: its b-elements
    reg [CNT_BITS-1:0] taken;  // elements of the due input taken in this pixel
    wire               room;

    assign in_a_ready = room && !on_b;
    assign in_b_ready = room && on_b;

    wire take = room && (on_b ? in_b_valid : in_a_valid);
    wire last = on_b ? (taken == LAST_B[CNT_BITS-1:0]) : (taken == LAST_A[CNT_BITS-1:0]);

    always @(posedge clk) begin
        if (rst) begin
            on_b  <= 1'b0;
            taken <= {CNT_BITS{1'b0}};
        end else if (take) begin
            on_b  <= on_b ^ last;
            taken <= last ? {CNT_BITS{1'b0}} : taken + 1'b1;
        end
    end

    fifo2 #(
        .WIDTH(OUT_BITS)
    ) u_out (
        .clk      (clk),
        .rst      (rst),
        .push     (take),
        .data     (on_b ? b_out : a_out),
        .room     (room),
        .out_valid(out_valid),
        .out_ready(out_ready),
        .out_data (out_data)
    );
endmodule
`default_nettype wire
