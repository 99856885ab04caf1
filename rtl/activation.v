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
// Timing contract: the looked-up value enters a 2-entry output FIFO at the edge its input is
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

    reg [OUT_BITS-1:0] head;   // FIFO entry 0 (out_data)
    reg [OUT_BITS-1:0] tail;   // FIFO entry 1
    reg [1:0]          count;  // elements held: 0, 1 or 2

    wire take = in_valid && in_ready;
    wire give = out_valid && out_ready;
    // where the new element goes: the slot after those that stay
    wire to_head = (count == 2'd0) || (count == 2'd1 && give);

    assign in_ready  = (count != 2'd2);
    assign out_valid = (count != 2'd0);
    assign out_data  = head;

    always @(posedge clk) begin
        if (rst) begin
            count <= 2'd0;
        end else begin
            count <= count + {1'b0, take} - {1'b0, give};
        end
    end

    always @(posedge clk) begin
        if (take && to_head) begin
            head <= looked_up;
        end else if (give && count == 2'd2) begin
            head <= tail;
        end
        if (take && !to_head) begin
            tail <= looked_up;
        end
    end
endmodule
`default_nettype wire
