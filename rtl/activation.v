// activation: an activation function as an exact lookup table (docs/fixed-point.md, "table").
//
//   out = ROM[in + 2**(IN_BITS-1)]     (the input code with its sign bit inverted)
//
// The ROM holds 2**IN_BITS words of OUT_BITS bits (two's complement), in ascending input-code
// order, loaded from ROM_FILE ($readmemh; kernels.activation.activation_table computes it).
// The golden model is kernels.activation.table_lookup; the schedule is
// kernels.activation.TableSchedule.
//
// Stream interface as every engine: one element per in_valid/in_ready handshake, one per
// out_valid/out_ready handshake, in the same order (elementwise: any stream order).
//
// Timing contract: the looked-up value enters a 2-entry output FIFO (rtl/fifo2.v) at the edge its input is
// accepted. An element accepted at edge e can leave at edge e + 1 (one edge of latency).
// in_ready = (FIFO holds fewer than 2 elements) is a register output, so no combinational path
// runs from out_ready to in_ready; with out_ready high the engine accepts and emits one element
// every edge (full rate), and it absorbs one edge of back-pressure before in_ready falls.
// out_data is the FIFO's head (meaningful only with out_valid); it holds while
// out_valid && !out_ready. Reset (synchronous, active high) empties the FIFO.
`default_nettype none
module activation #(
    parameter IN_BITS  = 8,
    parameter OUT_BITS = 8,
    parameter ROM_FILE = "table.mem"
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       in_valid,
    output wire                       in_ready,
    input  wire signed [IN_BITS-1:0]  in_data,
    output wire                       out_valid,
    input  wire                       out_ready,
    output wire signed [OUT_BITS-1:0] out_data
);
    localparam DEPTH = 1 << IN_BITS;

    reg [OUT_BITS-1:0] rom [0:DEPTH-1];
    initial begin
        $readmemh(ROM_FILE, rom);
    end

    // ROM address: the code + 2**(IN_BITS-1) == the code with its sign bit inverted
    wire [IN_BITS-1:0] addr = {~in_data[IN_BITS-1], in_data[IN_BITS-2:0]};
    wire [OUT_BITS-1:0] looked_up = rom[addr];

    wire room;

    assign in_ready = room;

    fifo2 #(
        .WIDTH(OUT_BITS)
    ) u_out (
        .clk      (clk),
        .rst      (rst),
        .push     (in_valid && room),
        .data     (looked_up),
        .room     (room),
        .out_valid(out_valid),
        .out_ready(out_ready),
        .out_data (out_data)
    );
endmodule
`default_nettype wire
