// fork2: one valid/ready stream broadcast to two consumers (a tensor with two readers, issue 27).
//
// The producer's beat is offered to both branches at once (the data wire is shared: the top
// connects in_data to both consumers; this module carries only the handshakes). Each branch's
// handshake is remembered in a register (a_done, b_done) until the other branch has taken the
// beat too; only then does the producer see in_ready and advance. So every beat reaches each
// branch exactly once, in order, never lost and never duplicated, whichever branch is slower.
//
//   a_valid  = in_valid && !a_done            (the same for b)
//   in_ready = (a_ready || a_done) && (b_ready || b_done)
//
// There is no register on the data path: a beat both branches take at one edge passes through
// with no latency (compiler/hw/dag_timing.py models it so). a_valid follows in_valid
// combinationally and never a_ready; in_ready follows the branches' readies combinationally,
// which is safe since no engine's valid depends on its own ready. Three or more consumers: the
// top chains fork2s (branch b feeding the next fork2), which behaves as one fork of N branches.
// Reset (synchronous, active high) clears both registers.
`default_nettype none
module fork2 (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    output wire in_ready,
    output wire a_valid,
    input  wire a_ready,
    output wire b_valid,
    input  wire b_ready
);
    reg a_done;  // branch a took the current beat; b has not yet
    reg b_done;

    assign a_valid  = in_valid && !a_done;
    assign b_valid  = in_valid && !b_done;
    assign in_ready = (a_ready || a_done) && (b_ready || b_done);

    always @(posedge clk) begin
        if (rst || (in_valid && in_ready)) begin
            a_done <= 1'b0;  // the beat is complete: the next one is offered to both
            b_done <= 1'b0;
        end else begin
            a_done <= a_done || (a_valid && a_ready);
            b_done <= b_done || (b_valid && b_ready);
        end
    end
endmodule
`default_nettype wire
