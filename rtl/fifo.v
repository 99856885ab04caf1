// fifo: a first-in first-out stream buffer of DEPTH elements: the early input of a join (rtl/add.v)
// waits here while the other branch computes (issue 27). compiler/hw/dag_timing.py computes
// DEPTH from its replay of the design.
//
// Timing contract (kernels.activation.TableFifo's with DEPTH entries): an element pushed at edge
// e can leave at edge e + 1 (one edge of latency); in_ready = (fewer than DEPTH held) and
// out_valid = (at least one held) are functions of the count register only, so no
// combinational path runs through the FIFO; with out_ready high it passes one element per edge.
// out_data holds while out_valid && !out_ready. Reset (synchronous, active high) empties it.
//
// Storage: a memory written at wr_ptr and read synchronously into the head register at the
// address the head will be at after this edge (rd_next), the shape of a block RAM's registered
// read port, so synthesis can map a deep FIFO to block RAM (a shallow one to registers or LUT
// RAM). An element written to that very address at the same edge (the FIFO empty or emptying)
// goes into the head straight from in_data.
`default_nettype none
module fifo #(
    parameter WIDTH = 8,
    parameter DEPTH = 4
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             in_valid,
    output wire             in_ready,
    input  wire [WIDTH-1:0] in_data,
    output wire             out_valid,
    input  wire             out_ready,
    output wire [WIDTH-1:0] out_data
);
    localparam AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam CW = $clog2(DEPTH + 1);
    localparam [31:0] LAST_32 = DEPTH - 1;
    localparam [31:0] FULL_32 = DEPTH;
    localparam [AW-1:0] LAST = LAST_32[AW-1:0];  // the last address
    localparam [CW-1:0] FULL = FULL_32[CW-1:0];

    reg [WIDTH-1:0] mem[0:DEPTH-1];
    reg [WIDTH-1:0] head;  // mem[rd_ptr] while out_valid
    reg [AW-1:0]    wr_ptr;
    reg [AW-1:0]    rd_ptr;
    reg [CW-1:0]    count;

    wire push = in_valid && in_ready;
    wire pop  = out_valid && out_ready;
    wire [AW-1:0] wr_inc  = (wr_ptr == LAST) ? {AW{1'b0}} : wr_ptr + 1'b1;
    wire [AW-1:0] rd_inc  = (rd_ptr == LAST) ? {AW{1'b0}} : rd_ptr + 1'b1;
    wire [AW-1:0] rd_next = pop ? rd_inc : rd_ptr;

    assign in_ready  = (count != FULL);
    assign out_valid = (count != 0);
    assign out_data  = head;

    always @(posedge clk) begin
        if (rst) begin
            count  <= 0;
            wr_ptr <= 0;
            rd_ptr <= 0;
        end else begin
            count  <= count + {{(CW - 1) {1'b0}}, push} - {{(CW - 1) {1'b0}}, pop};
            wr_ptr <= push ? wr_inc : wr_ptr;
            rd_ptr <= rd_next;
        end
    end

    always @(posedge clk) begin
        if (push) begin
            mem[wr_ptr] <= in_data;
        end
        // wr_ptr == rd_next with a push: nothing else would stay held (push is refused when full)
        if (push && wr_ptr == rd_next) begin
            head <= in_data;
        end else begin
            head <= mem[rd_next];
        end
    end
endmodule
`default_nettype wire
