// engine_output: the last stage of the ROM-streaming engines (dense_mac, sparse_mac,
// circulant_mac). It requantizes (+ReLU, rtl/requantize.v) a finished accumulator, or passes
// it through raw when REQUANT == 0, into the output register, which holds out_data while
// out_valid && !out_ready. The engine computes `advance` (= !out_valid || out_ready) and
// raises `load` while `acc` holds a finished result; one register edge, as before.
// Numeric contract: docs/fixed-point.md, "requantize".
`default_nettype none
module engine_output #(
    parameter ACC_BITS = 24,
    parameter OUT_BITS = 8,
    parameter SHIFT    = 7,
    parameter RELU     = 1,
    parameter REQUANT  = 1             // 1: requantized OUT_BITS outputs; 0: raw accumulators
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                advance,
    input  wire                load,
    input  wire signed [ACC_BITS-1:0] acc,
    output reg                 out_valid,
    output reg  signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data
);
    localparam OUT_W = (REQUANT != 0) ? OUT_BITS : ACC_BITS;
    wire signed [OUT_W-1:0] result;

    generate
        if (REQUANT != 0) begin : g_requant
            requantize #(
                .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU)
            ) u_requantize (
                .acc(acc),
                .y(result)
            );
        end else begin : g_raw
            assign result = acc;
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (advance) out_valid <= load;
    end

    always @(posedge clk) begin
        if (advance && load) out_data <= result;
    end
endmodule
`default_nettype wire
