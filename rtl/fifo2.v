// fifo2: the 2-entry output FIFO of the elementwise engines (activation, add).
//
// An element is pushed at an edge where `push` is high (the engine pushes only while `room`);
// it can leave at the next edge (one edge of latency). room = (fewer than 2 elements held) is a
// register output, so no combinational path runs from out_ready to the engine's in_ready: with
// out_ready high the FIFO takes and emits one element every edge (full rate), and it absorbs one
// edge of back-pressure before `room` falls. out_data is the head (meaningful only with
// out_valid); it holds while out_valid && !out_ready. Reset (synchronous, active high) empties it.
`default_nettype none
module fifo2 #(
    parameter WIDTH = 8
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             push,
    input  wire [WIDTH-1:0] data,
    output wire             room,
    output wire             out_valid,
    input  wire             out_ready,
    output wire [WIDTH-1:0] out_data
);
    reg [WIDTH-1:0] head;   // entry 0 (out_data)
    reg [WIDTH-1:0] tail;   // entry 1
    reg [1:0]       count;  // elements held: 0, 1 or 2

    wire give = out_valid && out_ready;
    // where the new element goes: the slot after those that stay
    wire to_head = (count == 2'd0) || (count == 2'd1 && give);

    assign room      = (count != 2'd2);
    assign out_valid = (count != 2'd0);
    assign out_data  = head;

    always @(posedge clk) begin
        if (rst) begin
            count <= 2'd0;
        end else begin
            count <= count + {1'b0, push} - {1'b0, give};
        end
    end

    always @(posedge clk) begin
        if (push && to_head) begin
            head <= data;
        end else if (give && count == 2'd2) begin
            head <= tail;
        end
        if (push && !to_head) begin
            tail <= data;
        end
    end
endmodule
`default_nettype wire
