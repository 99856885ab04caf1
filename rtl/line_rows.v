// line_rows: the row bookkeeping of the line-buffered engines (conv2d, pool2d): which input
// rows the line buffer holds, where the next one is written, and when an output row may be
// computed. The engine owns the line-buffer memory and the read-side loops; this module owns
// the rows.
//
// Line buffer: a ring of NROWS = KH + STRIDE input rows of ROW_WORDS words each, row slot s
// at words s*ROW_WORDS .. (s+1)*ROW_WORDS - 1: an output row needs at most KH rows (STRIDE if
// STRIDE > KH) and the next STRIDE rows load while it is computed. Input rows are counted
// over all frames (H per frame) and fill the slots in turn.
//   * Write side: the engine raises `we` to write a word at waddr this edge (words arrive in
//     raster order); the row's last word completes the row. in_ready (the engine's) is high
//     while fewer than NROWS complete rows are held: the first element of input row r is
//     accepted no earlier than the edge after the one that releases row r - NROWS.
//   * Read side, per output row oy (counted 0 .. H_OUT-1 within a frame), with
//     ry0 = oy*STRIDE - PAD_T:
//       lo  = clip(ry0, 0, H)                                  first input row still held
//       rel = H if oy = H_OUT-1, else clip(ry0 + STRIDE, 0, H) rows held after it
//       hi  = H-1 if oy = H_OUT-1, else max(min(ry0 + KH - 1, H-1), rel - 1)
//     can_issue is high while the row is being computed (since its first read) or rows
//     lo .. hi are complete. The engine issues reads (`issue`), the row's last one with
//     row_end high; at that edge rows lo .. rel-1 are released and the next output row
//     begins. Input row ry (lo <= ry <= hi) of the current output row sits in ring slot
//     base_slot + (ry - lo), minus NROWS if that is >= NROWS.
// Coordinates are signed CB-bit integers (the engine's width; CB must hold every value here).
`default_nettype none
module line_rows #(
    parameter H         = 6,
    parameter KH        = 3,
    parameter STRIDE    = 1,
    parameter PAD_T     = 0,
    parameter PAD_B     = 0,
    parameter ROW_WORDS = 6,           // line-buffer words per input row
    parameter CB        = 8            // bits of the signed coordinates
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    output wire                in_ready,
    input  wire                we,
    output wire [$clog2((KH + STRIDE) * ROW_WORDS)-1:0] waddr,
    output wire                can_issue,
    input  wire                issue,
    input  wire                row_end,
    output reg  signed [CB-1:0] ry0,       // oy*STRIDE - PAD_T
    output reg  signed [CB-1:0] lo,        // first held input row of this frame
    output reg  signed [CB-1:0] base_slot  // its ring slot
);
    localparam H_OUT     = (H + PAD_T + PAD_B - KH) / STRIDE + 1;
    localparam NROWS     = KH + STRIDE;
    localparam LB_DEPTH  = NROWS * ROW_WORDS;
    localparam LBA       = $clog2(LB_DEPTH);

    localparam [31:0] H_32 = H, S_32 = STRIDE, PT_32 = PAD_T, KH1_32 = KH - 1;
    localparam [31:0] OY1_32 = H_OUT - 1, NROWS_32 = NROWS;
    localparam [31:0] RW_32 = ROW_WORDS, RW1_32 = ROW_WORDS - 1;
    localparam [31:0] LBLAST_32 = LB_DEPTH - ROW_WORDS;
    localparam signed [CB-1:0] C_ZERO  = 0;
    localparam signed [CB-1:0] C_ONE   = 1;
    localparam signed [CB-1:0] C_H     = H_32[CB-1:0];
    localparam signed [CB-1:0] C_H1    = C_H - C_ONE;
    localparam signed [CB-1:0] C_S     = S_32[CB-1:0];
    localparam signed [CB-1:0] C_MPT   = C_ZERO - PT_32[CB-1:0];
    localparam signed [CB-1:0] C_KH1   = KH1_32[CB-1:0];
    localparam signed [CB-1:0] C_OY1   = OY1_32[CB-1:0];
    localparam signed [CB-1:0] C_NROWS = NROWS_32[CB-1:0];
    localparam [LBA-1:0]       A_RW1   = RW1_32[LBA-1:0];
    localparam [LBA-1:0]       A_RW    = RW_32[LBA-1:0];
    localparam [LBA-1:0]       A_LAST  = LBLAST_32[LBA-1:0];

    // ---------------------------------------------------------------- write side
    reg signed [CB-1:0] ready;            // complete input rows held (not yet released)
    reg [LBA-1:0]       load_word;        // word within the row
    reg [LBA-1:0]       load_base;        // first word of the ring row being loaded

    assign in_ready = (ready < C_NROWS);
    assign waddr    = load_base + load_word;
    wire row_done   = we && (load_word == A_RW1);

    always @(posedge clk) begin
        if (rst) begin
            load_word <= 0;
            load_base <= 0;
        end else if (we) begin
            load_word <= row_done ? 0 : load_word + 1'b1;
            if (row_done) load_base <= (load_base == A_LAST) ? 0 : load_base + A_RW;
        end
    end

    // ---------------------------------------------------------------- read side
    reg                 running;          // inside an output row
    reg signed [CB-1:0] oy;

    // This output row's needs (header: lo, rel, hi).
    wire oy_last = (oy == C_OY1);
    wire signed [CB-1:0] ry_next = ry0 + C_S;
    wire signed [CB-1:0] rel_clip = ry_next[CB-1] ? C_ZERO : (ry_next > C_H) ? C_H : ry_next;
    wire signed [CB-1:0] rel = oy_last ? C_H : rel_clip;
    wire signed [CB-1:0] bot = ry0 + C_KH1;
    wire signed [CB-1:0] bot_clip = (bot > C_H1) ? C_H1 : bot;
    wire signed [CB-1:0] hi = oy_last ? C_H1 : ((bot_clip > rel - C_ONE) ? bot_clip : rel - C_ONE);
    wire signed [CB-1:0] need = hi - lo + C_ONE;        // rows that must be complete
    wire signed [CB-1:0] rel_n = rel - lo;               // rows released at the row's end
    wire signed [CB-1:0] base_next_a = base_slot + rel_n;
    wire signed [CB-1:0] base_next =
        (base_next_a >= C_NROWS) ? base_next_a - C_NROWS : base_next_a;

    assign can_issue = running || (ready >= need);

    always @(posedge clk) begin
        if (rst) begin
            running   <= 1'b0;
            oy        <= C_ZERO;
            ry0       <= C_MPT;
            lo        <= C_ZERO;
            base_slot <= C_ZERO;
        end else if (issue) begin
            running <= !row_end;
            if (row_end) begin
                oy        <= oy_last ? C_ZERO : oy + C_ONE;
                ry0       <= oy_last ? C_MPT : ry_next;
                lo        <= oy_last ? C_ZERO : rel;
                base_slot <= base_next;
            end
        end
    end

    always @(posedge clk) begin
        if (rst) ready <= C_ZERO;
        else ready <= ready + (row_done ? C_ONE : C_ZERO) - ((issue && row_end) ? rel_n : C_ZERO);
    end
endmodule
`default_nettype wire
