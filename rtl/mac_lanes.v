// mac_lanes: the products and accumulate stages of the MAC engines (dense_mac, sparse_mac,
// conv2d): N_ACC accumulators, each fed by P multipliers that share one operand vector x.
//
// Stage 1 (the engine's registered reads) presents, with the tags valid/first/last:
//   x    P operands, lane l at bits [l*IN_BITS +: IN_BITS]
//   w    N_ACC*P weights, accumulator a's lane l at bits [(a*P + l)*W_BITS +: W_BITS]
//   bias N_ACC biases, accumulator a's at bits [a*B_BITS +: B_BITS]
// Stage 2 (edge): dot[a] <= (first ? bias[a] : 0) + sum_l w[a, l] * x[l] (signed).
// Stage 3 (edge): acc[a] <= dot[a] if its word was first, else acc[a] + dot[a]; `done` is
//   high from the edge that adds a word tagged `last` (acc then holds a finished sum).
// Everything moves only at edges with `advance` high (a stall freezes both stages); valid
// and done are reset. Arithmetic is modulo 2**ACC_BITS: the instantiator guarantees the exact
// sums fit in ACC_BITS (and B_BITS <= ACC_BITS), so truncating intermediate terms to
// ACC_BITS cannot change them. Resources: N_ACC*P multipliers (DSP blocks).
`default_nettype none
module mac_lanes #(
    parameter N_ACC    = 1,            // accumulators
    parameter P        = 1,            // multipliers per accumulator
    parameter IN_BITS  = 8,
    parameter W_BITS   = 8,
    parameter B_BITS   = 16,
    parameter ACC_BITS = 24
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                advance,
    input  wire                valid,          // stage 1 holds a word
    input  wire                first,          // ... the first of its sums (adds the bias)
    input  wire                last,           // ... the last of its sums
    input  wire [P*IN_BITS-1:0]        x,
    input  wire [N_ACC*P*W_BITS-1:0]   w,
    input  wire [N_ACC*B_BITS-1:0]     bias,
    output wire [N_ACC*ACC_BITS-1:0]   acc,
    output reg                         done
);
    localparam PROD_BITS = W_BITS + IN_BITS;

    reg dot_valid, dot_first, dot_last;

    genvar a, lane;
    generate
        for (a = 0; a < N_ACC; a = a + 1) begin : g_acc
            wire [B_BITS-1:0] b_raw = bias[a*B_BITS +: B_BITS];
            wire signed [ACC_BITS-1:0] b_ext;
            wire signed [ACC_BITS-1:0] partial [0:P];   // partial[l] = sum of lanes < l
            if (ACC_BITS > B_BITS) begin : g_bias_ext
                assign b_ext = {{(ACC_BITS - B_BITS){b_raw[B_BITS-1]}}, b_raw};
            end else begin : g_bias_same
                assign b_ext = b_raw;
            end
            assign partial[0] = first ? b_ext : {ACC_BITS{1'b0}};

            for (lane = 0; lane < P; lane = lane + 1) begin : g_mul
                wire signed [W_BITS-1:0]  wl = w[(a*P + lane)*W_BITS +: W_BITS];
                wire signed [IN_BITS-1:0] xl = x[lane*IN_BITS +: IN_BITS];
                wire signed [PROD_BITS-1:0] prod =
                    $signed({{IN_BITS{wl[W_BITS-1]}}, wl}) * $signed({{W_BITS{xl[IN_BITS-1]}}, xl});
                wire signed [ACC_BITS-1:0] term;
                if (ACC_BITS > PROD_BITS) begin : g_ext
                    assign term = {{(ACC_BITS - PROD_BITS){prod[PROD_BITS-1]}}, prod};
                end else if (ACC_BITS == PROD_BITS) begin : g_same
                    assign term = prod;
                end else begin : g_trunc
                    assign term = prod[ACC_BITS-1:0];
                    // The dropped high bits are not needed (see above); named unused_* for lint.
                    wire unused_high = ^prod[PROD_BITS-1:ACC_BITS];
                end
                assign partial[lane + 1] = partial[lane] + term;
            end

            reg signed [ACC_BITS-1:0] dot;    // bias (first word only) + this word's products
            reg signed [ACC_BITS-1:0] sum;
            always @(posedge clk) begin
                if (advance) dot <= partial[P];
                if (advance && dot_valid) sum <= dot_first ? dot : sum + dot;
            end
            assign acc[a*ACC_BITS +: ACC_BITS] = sum;
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            dot_valid <= 1'b0;
            done      <= 1'b0;
        end else if (advance) begin
            dot_valid <= valid;
            dot_first <= first;
            dot_last  <= last;
            done      <= dot_valid && dot_last;
        end
    end
endmodule
`default_nettype wire
