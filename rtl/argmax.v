// argmax: collects N streamed logits and presents them, with the index of the largest,
// as one output beat. Ties go to the lowest index (strict `>`), as kernels/argmax.py and
// docs/fixed-point.md ("output") require.
//
// Timing: one logit accepted per cycle while in_valid is high (in_ready is high while
// collecting); out_valid rises the cycle after the N-th logit is accepted and holds, with
// out_logits/out_argmax stable, until out_ready. in_ready is low while out_valid is high, so
// with in_valid and out_ready held high a vector costs N + 1 cycles.
module argmax #(
    parameter N        = 10,
    parameter W        = 16,
    parameter IDX_BITS = 4
) (
    input  wire                  clk,
    input  wire                  rst,            // synchronous, active high
    input  wire                  in_valid,
    output wire                  in_ready,
    input  wire signed [W-1:0]   in_data,
    output wire                  out_valid,
    input  wire                  out_ready,
    output wire [N*W-1:0]        out_logits,     // logit k at [k*W +: W]
    output wire [IDX_BITS-1:0]   out_argmax
);
    localparam [31:0] LAST_32 = N - 1;
    localparam [IDX_BITS-1:0] LAST = LAST_32[IDX_BITS-1:0];

    reg [N*W-1:0]          logits;
    reg [IDX_BITS-1:0]     count;        // index of the next logit
    reg signed [W-1:0]     best;
    reg [IDX_BITS-1:0]     best_idx;
    reg                    full;         // all N logits collected, output beat pending

    assign in_ready   = !full;
    assign out_valid  = full;
    assign out_logits = logits;
    assign out_argmax = best_idx;

    wire accept   = in_valid && in_ready;
    wire new_best = (count == 0) || (in_data > best);

    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : g_store
            always @(posedge clk) begin
                if (accept && count == k) logits[k*W +: W] <= in_data;
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (accept && new_best) begin
            best     <= in_data;
            best_idx <= count;
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            count <= 0;
            full  <= 1'b0;
        end else if (accept) begin
            count <= (count == LAST) ? 0 : count + 1'b1;
            if (count == LAST) full <= 1'b1;
        end else if (full && out_ready) begin
            full <= 1'b0;
        end
    end
endmodule
