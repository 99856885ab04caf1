// word_pack: packs an element stream into memory words of P elements (the input side of
// dense_mac, through rtl/mac_input.v, and of conv2d's line buffer). The stream is a sequence
// of groups of N elements (a dense input vector; a conv pixel's C_IN channels); element k of
// a group goes to word k / P of the group, lane k % P (bits [lane*IN_BITS +: IN_BITS]), so a
// group fills NW = ceil(N / P) words and the lanes past its last element are 0.
//
// Timing: no added latency. At an edge with `accept` high the element in_data is taken;
// `we` is high (combinationally, = accept && this element completes a word: lane P-1 or the
// group's last element) in the cycle before the edge at which the complete word `word`
// (including in_data) is to be written at word index `addr` of the group. `last` marks the
// group's last element (accept not included). With P = 1 a word is one element: `we` =
// accept, `word` = in_data, `addr` = the element's index.
`default_nettype none
module word_pack #(
    parameter N       = 4,             // elements per group
    parameter P       = 1,             // elements per word
    parameter IN_BITS = 8
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                accept,
    input  wire [IN_BITS-1:0]  in_data,
    output wire                we,
    output wire [P*IN_BITS-1:0] word,
    output reg  [((((N + P - 1) / P) > 1) ? $clog2((N + P - 1) / P) : 1)-1:0] addr,
    output wire                last
);
    localparam NW        = (N + P - 1) / P;              // words per group
    localparam LAST_LANE = (N - 1) % P;                  // lane of the group's last element
    localparam LANE_BITS = (P > 1) ? $clog2(P) : 1;
    localparam A_BITS    = (NW > 1) ? $clog2(NW) : 1;
    // Counter end values, sliced to the counters' widths.
    localparam [31:0] LANE_END_32  = P - 1;
    localparam [31:0] LAST_LANE_32 = LAST_LANE;
    localparam [31:0] A_END_32     = NW - 1;
    localparam [LANE_BITS-1:0] LANE_END  = LANE_END_32[LANE_BITS-1:0];
    localparam [LANE_BITS-1:0] LANE_LAST = LAST_LANE_32[LANE_BITS-1:0];
    localparam [A_BITS-1:0]    A_END     = A_END_32[A_BITS-1:0];

    generate
        if (P == 1) begin : g_single
            // A word is one element: nothing to assemble, no lane counter, no partial word.
            assign last = (addr == A_END);
            assign we   = accept;
            assign word = in_data;
            always @(posedge clk) begin
                if (rst) addr <= 0;
                else if (accept) addr <= last ? 0 : addr + 1'b1;
            end
        end else begin : g_packed
            reg [LANE_BITS-1:0] lane_idx;         // lane of the next element
            reg [P*IN_BITS-1:0] partial;          // word being assembled; unfilled lanes stay 0

            assign last      = (addr == A_END) && (lane_idx == LANE_LAST);
            wire   word_full = (lane_idx == LANE_END) || last;
            assign we        = accept && word_full;

            genvar lane;
            for (lane = 0; lane < P; lane = lane + 1) begin : g_lane
                assign word[lane*IN_BITS +: IN_BITS] =
                    (lane_idx == lane) ? in_data : partial[lane*IN_BITS +: IN_BITS];
            end

            always @(posedge clk) begin
                if (rst) begin
                    lane_idx <= 0;
                    addr     <= 0;
                    partial  <= 0;
                end else if (accept) begin
                    partial  <= word_full ? {P*IN_BITS{1'b0}} : word;
                    lane_idx <= word_full ? 0 : lane_idx + 1'b1;
                    if (word_full) addr <= last ? 0 : addr + 1'b1;
                end
            end
        end
    endgenerate
endmodule
`default_nettype wire
