// engine_output: the last stage of the engines (dense_mac, sparse_mac, circulant_mac, conv2d,
// pool2d). It requantizes (+ReLU, rtl/requantize.v) finished accumulators, or passes them
// through raw when REQUANT == 0, into the output register, which holds out_data while
// out_valid && !out_ready. Numeric contract: docs/fixed-point.md, "requantize".
//
// One load carries BEATS results (acc, result k at bits [k*ACC_BITS +: ACC_BITS]) that leave
// one per handshake, result 0 first, from an output shift register (conv2d: the P_CO channels
// of a group); a load with `last` high carries only LAST_BEATS (<= BEATS) of them (conv2d's
// last group). BEATS = 1: one output register.
//
// Timing: `free` is high while the register can take a load at this edge (it is empty, or
// its last beat completes its handshake now): free = !out_valid || (one beat left &&
// out_ready). The engine raises `load` while acc holds finished results; they are taken at
// an edge with load && free, and out_valid is high from that edge. So an engine whose
// pipeline moves only with `free` (advance = free: dense_mac, sparse_mac, circulant_mac,
// pool2d) holds its pipeline and the output while out_valid && !out_ready; one register edge.
// While out_valid is low, out_data holds the last value (BEATS = 1) or the shifted-out
// register (BEATS > 1); it is meaningful only with out_valid.
`default_nettype none
module engine_output #(
    parameter ACC_BITS   = 24,
    parameter OUT_BITS   = 8,
    parameter SHIFT      = 7,
    parameter RELU       = 1,
    parameter REQUANT    = 1,          // 1: requantized OUT_BITS outputs; 0: raw accumulators
    parameter BEATS      = 1,          // results per load
    parameter LAST_BEATS = BEATS       // results of a load with `last` high
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                load,
    input  wire                last,
    input  wire [BEATS*ACC_BITS-1:0] acc,
    output wire                free,
    output wire                out_valid,
    input  wire                out_ready,
    output wire signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data
);
    localparam OUT_W = (REQUANT != 0) ? OUT_BITS : ACC_BITS;
    localparam NB    = $clog2(BEATS + 1);                // bits of the beats-left count
    localparam [31:0] FULL_32 = BEATS, LAST_32 = LAST_BEATS;
    localparam [NB-1:0] N_FULL = FULL_32[NB-1:0];
    localparam [NB-1:0] N_LAST = LAST_32[NB-1:0];
    localparam [NB-1:0] N_ONE  = 1;

    wire [BEATS*OUT_W-1:0] result;

    genvar k;
    generate
        for (k = 0; k < BEATS; k = k + 1) begin : g_beat
            if (REQUANT != 0) begin : g_requant
                requantize #(
                    .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU)
                ) u_requantize (
                    .acc(acc[k*ACC_BITS +: ACC_BITS]),
                    .y(result[k*OUT_W +: OUT_W])
                );
            end else begin : g_raw
                assign result[k*OUT_W +: OUT_W] = acc[k*ACC_BITS +: ACC_BITS];
            end
        end
    endgenerate

    reg [NB-1:0]          pend;           // beats left (BEATS = 1: out_valid itself)
    reg [BEATS*OUT_W-1:0] out_sh;         // beat k at bits [k*OUT_W +: OUT_W]
    wire beat = (pend != 0) && out_ready;
    wire take = load && free;
    assign free = (pend == 0) || ((pend == N_ONE) && out_ready);

    always @(posedge clk) begin
        if (rst) pend <= 0;
        else if (take) pend <= last ? N_LAST : N_FULL;
        else if (beat) pend <= pend - N_ONE;
    end

    generate
        if (BEATS > 1) begin : g_shift
            always @(posedge clk) begin
                if (take) out_sh <= result;
                else if (beat) out_sh <= out_sh >> OUT_W;
            end
        end else begin : g_hold
            always @(posedge clk) begin
                if (take) out_sh <= result;
            end
        end
    endgenerate

    assign out_valid = (pend != 0);
    assign out_data  = out_sh[OUT_W-1:0];
endmodule
`default_nettype wire
