// conv2d: one 2-D convolution layer (groups = 1), line-buffered and streaming, P_CO x P_CI x P_K
// multipliers, weights and bias in ROM.
//
// Input: one frame (C_IN x H x W) after another, one element per handshake in channel-last
// raster order: for y, for x, for c (element x[c, y, x]). For each frame it computes
//     acc[co, oy, ox] = B[co] + sum_{ci,ky,kx} W[co, ci, ky, kx] * x_pad[ci, oy*STRIDE + ky, ox*STRIDE + kx]
// (exact at ACC_BITS; x_pad is x with PAD_T/PAD_L/PAD_B/PAD_R zero rows/columns;
// docs/fixed-point.md "Convolution and pooling") and emits requantize(acc) (OUT_BITS,
// rtl/requantize.v, ReLU when RELU) when REQUANT != 0, or the raw accumulator when REQUANT == 0,
// in the same order: for oy, for ox, for co. H_OUT = (H + PAD_T + PAD_B - KH) / STRIDE + 1,
// W_OUT likewise. Golden model: kernels/conv2d.py (+ requantize.py).
//
// Parallelism: P_CO output channels (one accumulator each) x P_CI input channels x P_K kernel
// positions per cycle. Channels are packed P_CI to a line-buffer word (NCW = ceil(C_IN / P_CI)
// words per pixel). The KH*KW kernel positions, in raster order k = ky*KW + kx, are read P_K at
// a time: kernel step ks covers positions ks*P_K .. ks*P_K + P_K - 1, NKS = ceil(KH*KW / P_K)
// steps; in the last step positions k >= KH*KW (when P_K does not divide KH*KW) have zero
// weights in ROM and read as padding. So P_K line-buffer words (one per position, the same
// channel word cw) and one weight-ROM word (P_CO*P_K*P_CI weights) feed P_CO*P_K*P_CI
// multipliers per cycle. P_K = 1 walks the positions one per cycle.
//
// ROM images (layout in kernels/conv_rom.py): NCG = ceil(C_OUT / P_CO) groups. W_FILE holds
// NCG*NKS*NCW words of P_CO*P_K*P_CI*W_BITS bits, word (g*NKS + ks)*NCW + cw packing
// W[g*P_CO + p, cw*P_CI + l, ky, kx] of position k = ks*P_K + j = ky*KW + kx at bits
// [((p*P_K + j)*P_CI + l)*W_BITS +: W_BITS] (zero past C_OUT, C_IN, KH*KW). B_FILE holds NCG
// words of P_CO*B_BITS bits (B[g*P_CO + p] at [p*B_BITS +: B_BITS]).
//
// Line buffer: a ring of NROWS = KH + STRIDE input rows (W*NCW words each, block or LUT
// RAM): an output row needs at most KH rows (STRIDE if STRIDE > KH) and the next STRIDE rows
// load while it is computed. For P_K reads per cycle the ring is kept in P_K identical copies,
// written together, each with one read port (lane j reads position ks*P_K + j): a block RAM
// has at most two ports, so synthesis would copy a memory of P_K read ports anyway; explicit
// copies keep each a plain one-write, one-read memory that yosys maps as for P_K = 1.
//
// Requirements on the instantiator: ACC_BITS is wide enough that no accumulator overflows
// (conv_accumulator_bits), B_BITS <= ACC_BITS, every padding < its kernel size,
// 1 <= P_K <= KH*KW.
//
// Timing, in rising clock edges (a handshake completes at an edge). G = NKS*NCW = ceil(KH*KW /
// P_K)*NCW (reads per output-channel group), ROW_CYC = W_OUT*NCG*G (one output row). For output
// row oy:
//   lo  = clip(oy*STRIDE - PAD_T, 0, H)                 first input row still held
//   rel = H if oy = H_OUT-1, else clip((oy+1)*STRIDE - PAD_T, 0, H)   rows held after it
//   hi  = H-1 if oy = H_OUT-1, else max(min(oy*STRIDE - PAD_T + KH - 1, H-1), rel - 1)
//   * Computing reads one ROM word (and P_K line-buffer words) per edge, ROW_CYC edges with no
//     bubbles (loops for ox, for group g, for kernel step ks, for cw), starting at
//         C = max(edge of the last input of row hi of its frame + 1, C of the previous
//                 output row (of this or the previous frame) + ROW_CYC).
//     At its last read (edge C + ROW_CYC - 1) input rows lo .. rel-1 are released.
//   * in_ready is high while fewer than NROWS complete input rows are held: the first
//     element of input row r (counting rows over all frames) is accepted no earlier than
//     the edge after the one that releases row r - NROWS; other elements are never held up.
//   * With G >= P_CO (compiler/passes/lower.py plans only such P_CO, P_CI, P_K), output
//     (oy, ox, g*P_CO + p) completes its handshake at edge
//         C + (ox*NCG + g + 1)*G + 3 + p
//     when out_ready is high (ROM read, products, accumulate, then the P_CO results of a
//     group leave one per edge from an output shift register). With G < P_CO the shift
//     register paces the groups (one group per >= P_CO edges; values are unaffected).
//   While the shift register is full and not being emptied, the compute pipeline stalls;
//   loading continues.
module conv2d #(
    parameter C_IN     = 1,
    parameter H        = 6,
    parameter W        = 6,
    parameter C_OUT    = 2,
    parameter KH       = 3,
    parameter KW       = 3,
    parameter STRIDE   = 1,
    parameter PAD_T    = 0,
    parameter PAD_L    = 0,
    parameter PAD_B    = 0,
    parameter PAD_R    = 0,
    parameter P_CO     = 1,            // output channels in parallel
    parameter P_CI     = 1,            // input channels per line-buffer word
    parameter P_K      = 1,            // kernel positions per cycle (1 .. KH*KW)
    parameter IN_BITS  = 8,
    parameter W_BITS   = 8,
    parameter B_BITS   = 16,
    parameter ACC_BITS = 24,
    parameter OUT_BITS = 8,
    parameter SHIFT    = 7,
    parameter RELU     = 1,
    parameter REQUANT  = 1,            // 1: requantized OUT_BITS outputs; 0: raw accumulators
    parameter W_FILE   = "conv_w.mem",
    parameter B_FILE   = "conv_b.mem"
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                in_valid,
    output wire                in_ready,
    input  wire signed [IN_BITS-1:0] in_data,
    output wire                out_valid,
    input  wire                out_ready,
    output wire signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data
);
    localparam OUT_W     = (REQUANT != 0) ? OUT_BITS : ACC_BITS;
    localparam H_OUT     = (H + PAD_T + PAD_B - KH) / STRIDE + 1;
    localparam W_OUT     = (W + PAD_L + PAD_R - KW) / STRIDE + 1;
    localparam NCW       = (C_IN + P_CI - 1) / P_CI;      // line-buffer words per pixel
    localparam NCG       = (C_OUT + P_CO - 1) / P_CO;     // output-channel groups
    localparam NKS       = (KH * KW + P_K - 1) / P_K;     // kernel steps per group
    localparam G         = NKS * NCW;                     // reads per group
    localparam PARTIAL   = (KH * KW) % P_K != 0;          // the last step reaches past KH*KW
    localparam LANES     = P_K * P_CI;                    // multipliers per output channel
    localparam NROWS     = KH + STRIDE;                   // line-buffer rows
    localparam ROW_WORDS = W * NCW;
    localparam LB_DEPTH  = NROWS * ROW_WORDS;
    localparam W_DEPTH   = NCG * G;
    localparam LAST_LANE = (C_IN - 1) % P_CI;
    localparam LAST_N    = C_OUT - (NCG - 1) * P_CO;      // channels in the last group
    localparam PROD_BITS = W_BITS + IN_BITS;
    localparam LBA       = $clog2(LB_DEPTH);
    localparam WA        = (W_DEPTH > 1) ? $clog2(W_DEPTH) : 1;
    localparam BA        = (NCG > 1) ? $clog2(NCG) : 1;
    localparam LANE_BITS = (P_CI > 1) ? $clog2(P_CI) : 1;
    localparam XW        = P_CI * IN_BITS;                // a line-buffer word
    localparam CW_BITS   = (NCW > 1) ? $clog2(NCW) : 1;
    localparam NB        = $clog2(P_CO + 1);              // beats left in the shift register
    // Compute-side integers (coordinates may be negative): one signed width for all.
    localparam SPAN      = H + W + PAD_T + PAD_B + PAD_L + PAD_R + KH + KW + 2 * STRIDE
                           + LB_DEPTH + NCG + P_K;
    localparam CB        = $clog2(SPAN) + 2;

    // Constants at the widths they are used at.
    localparam [31:0] H_32 = H, W_32 = W, S_32 = STRIDE, PT_32 = PAD_T, PL_32 = PAD_L;
    localparam [31:0] KH1_32 = KH - 1, KW_32 = KW, KW1_32 = KW - 1, NCW1_32 = NCW - 1, NCW_32 = NCW;
    localparam [31:0] DKY_32 = P_K / KW, DKX_32 = P_K % KW;
    localparam [31:0] NCG1_32 = NCG - 1, OY1_32 = H_OUT - 1, OX1_32 = W_OUT - 1;
    localparam [31:0] NROWS_32 = NROWS, RW_32 = ROW_WORDS, RW1_32 = ROW_WORDS - 1;
    localparam [31:0] LBLAST_32 = LB_DEPTH - ROW_WORDS, LANE1_32 = P_CI - 1;
    localparam [31:0] LLANE_32 = LAST_LANE, LASTN_32 = LAST_N, PCO_32 = P_CO;
    localparam signed [CB-1:0] C_ZERO  = 0;
    localparam signed [CB-1:0] C_ONE   = 1;
    localparam signed [CB-1:0] C_H     = H_32[CB-1:0];
    localparam signed [CB-1:0] C_H1    = C_H - C_ONE;
    localparam signed [CB-1:0] C_W     = W_32[CB-1:0];
    localparam signed [CB-1:0] C_S     = S_32[CB-1:0];
    localparam signed [CB-1:0] C_MPT   = C_ZERO - PT_32[CB-1:0];
    localparam signed [CB-1:0] C_MPL   = C_ZERO - PL_32[CB-1:0];
    localparam signed [CB-1:0] C_KH1   = KH1_32[CB-1:0];
    localparam signed [CB-1:0] C_KW    = KW_32[CB-1:0];
    localparam signed [CB-1:0] C_KW1   = KW1_32[CB-1:0];
    localparam signed [CB-1:0] C_DKY   = DKY_32[CB-1:0];   // a kernel step advances P_K positions:
    localparam signed [CB-1:0] C_DKX   = DKX_32[CB-1:0];   //   DKY rows and DKX columns
    localparam signed [CB-1:0] C_NCW1  = NCW1_32[CB-1:0];
    localparam signed [CB-1:0] C_NCW   = NCW_32[CB-1:0];
    localparam signed [CB-1:0] C_NCG1  = NCG1_32[CB-1:0];
    localparam signed [CB-1:0] C_OY1   = OY1_32[CB-1:0];
    localparam signed [CB-1:0] C_OX1   = OX1_32[CB-1:0];
    localparam signed [CB-1:0] C_NROWS = NROWS_32[CB-1:0];
    localparam signed [CB-1:0] C_RW    = RW_32[CB-1:0];
    localparam [LBA-1:0]       A_RW1   = RW1_32[LBA-1:0];
    localparam [LBA-1:0]       A_RW    = RW_32[LBA-1:0];
    localparam [LBA-1:0]       A_LAST  = LBLAST_32[LBA-1:0];
    localparam [LANE_BITS-1:0] LANE_END  = LANE1_32[LANE_BITS-1:0];
    localparam [LANE_BITS-1:0] LANE_LAST = LLANE_32[LANE_BITS-1:0];
    localparam [CW_BITS-1:0]   CW_END    = NCW1_32[CW_BITS-1:0];
    localparam [NB-1:0]        N_LAST    = LASTN_32[NB-1:0];
    localparam [NB-1:0]        N_FULL    = PCO_32[NB-1:0];
    localparam [NB-1:0]        N_ONE     = 1;

    // ---------------------------------------------------------------- memories
    reg [P_CO*LANES*W_BITS-1:0] w_rom [0:W_DEPTH-1];
    reg [P_CO*B_BITS-1:0]       b_rom [0:NCG-1];
    // the line-buffer ring: P_K copies in g_lane below

    initial begin
        $readmemh(W_FILE, w_rom);
        $readmemh(B_FILE, b_rom);
    end

    wire advance;                                        // compute pipeline moves

    // ---------------------------------------------------------------- load rows
    reg signed [CB-1:0] ready;            // complete input rows held (not yet released)
    reg [LANE_BITS-1:0] load_lane;
    reg [CW_BITS-1:0]   load_cw;          // word within the pixel
    reg [LBA-1:0]       load_word;        // word within the row
    reg [LBA-1:0]       load_base;        // first word of the ring row being loaded
    reg [XW-1:0]        x_partial;        // word being assembled; unfilled lanes stay 0
    wire [XW-1:0]       x_partial_next;

    assign in_ready = (ready < C_NROWS);
    wire accept     = in_valid && in_ready;
    wire pix_done   = (load_cw == CW_END) && (load_lane == LANE_LAST);
    wire word_full  = (load_lane == LANE_END) || pix_done;
    wire row_done   = accept && pix_done && (load_word == A_RW1);

    genvar lane, co, j, t;
    generate
        for (lane = 0; lane < P_CI; lane = lane + 1) begin : g_load_lane
            assign x_partial_next[lane*IN_BITS +: IN_BITS] =
                (load_lane == lane) ? in_data : x_partial[lane*IN_BITS +: IN_BITS];
        end
    endgenerate

    wire          lb_we    = accept && word_full;
    wire [LBA-1:0] lb_waddr = load_base + load_word;

    always @(posedge clk) begin
        if (rst) begin
            load_lane <= 0;
            load_cw   <= 0;
            load_word <= 0;
            load_base <= 0;
            x_partial <= 0;
        end else if (accept) begin
            x_partial <= word_full ? {XW{1'b0}} : x_partial_next;
            load_lane <= word_full ? 0 : load_lane + 1'b1;
            if (word_full) begin
                load_cw   <= pix_done ? 0 : load_cw + 1'b1;
                load_word <= (load_word == A_RW1) ? 0 : load_word + 1'b1;
            end
            if (row_done) load_base <= (load_base == A_LAST) ? 0 : load_base + A_RW;
        end
    end

    // ---------------------------------------------------------------- issue reads
    reg                 running;          // inside an output row
    reg signed [CB-1:0] oy, ox, cg, cw;
    reg signed [CB-1:0] ky, kx;           // the kernel step's first position (lane 0)
    reg signed [CB-1:0] ry0;              // oy*STRIDE - PAD_T
    reg signed [CB-1:0] cx0;              // ox*STRIDE - PAD_L
    reg signed [CB-1:0] lo;               // first held input row of this frame
    reg signed [CB-1:0] base_slot;        // its ring slot
    reg [WA-1:0]        w_addr;

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

    wire cw_last  = (cw == C_NCW1);
    wire ks_last;                         // the last kernel step (from its last lane, g_lane)
    wire cg_last  = (cg == C_NCG1);
    wire ox_last  = (ox == C_OX1);
    wire grp_last = cw_last && ks_last;
    wire pix_last = grp_last && cg_last;
    wire row_end  = pix_last && ox_last;
    wire issue    = (running || (ready >= need)) && advance;

    // The next kernel step's first position: P_K positions on, one column wrap at most.
    wire signed [CB-1:0] kx_sum  = kx + C_DKX;
    wire                 kx_wrap = (DKX_32 != 0) && (kx_sum > C_KW1);
    wire signed [CB-1:0] kx_step = kx_wrap ? kx_sum - C_KW : kx_sum;
    wire signed [CB-1:0] ky_step = ky + C_DKY + (kx_wrap ? C_ONE : C_ZERO);
    wire [BA-1:0]  b_addr = cg[BA-1:0];
    wire unused_cg_high = ^cg[CB-1:BA];

    always @(posedge clk) begin
        if (rst) begin
            running   <= 1'b0;
            oy        <= C_ZERO;
            ox        <= C_ZERO;
            cg        <= C_ZERO;
            ky        <= C_ZERO;
            kx        <= C_ZERO;
            cw        <= C_ZERO;
            ry0       <= C_MPT;
            cx0       <= C_MPL;
            lo        <= C_ZERO;
            base_slot <= C_ZERO;
            w_addr    <= 0;
        end else if (issue) begin
            running <= !row_end;
            w_addr  <= pix_last ? 0 : w_addr + 1'b1;
            cw      <= cw_last ? C_ZERO : cw + C_ONE;
            if (cw_last) begin
                kx <= ks_last ? C_ZERO : kx_step;
                ky <= ks_last ? C_ZERO : ky_step;
            end
            if (grp_last) cg <= cg_last ? C_ZERO : cg + C_ONE;
            if (pix_last) begin
                ox  <= ox_last ? C_ZERO : ox + C_ONE;
                cx0 <= ox_last ? C_MPL : cx0 + C_S;
            end
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

    // ---------------------------------------------------------------- stage 1: reads
    reg [P_CO*LANES*W_BITS-1:0] w_word;
    reg [P_CO*B_BITS-1:0]       b_word;
    wire [P_K*XW-1:0]           x_eff;    // the P_K words read, padding zeroed
    reg rd_valid, rd_first, rd_last, rd_cg_last;

    always @(posedge clk) begin
        if (advance) begin
            w_word <= w_rom[w_addr];
            b_word <= b_rom[b_addr];
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            rd_valid <= 1'b0;
        end else if (advance) begin
            rd_valid   <= issue;
            rd_first   <= (ky == C_ZERO) && (kx == C_ZERO) && (cw == C_ZERO);
            rd_last    <= grp_last;
            rd_cg_last <= cg_last;
        end
    end

    // One ring copy per kernel position of a step. Lane j reads x[cw-th word, ry0 + ky_j,
    // cx0 + kx_j], position ks*P_K + j; padding, and positions past KH*KW, read word 0, zeroed.
    generate
        for (j = 0; j < P_K; j = j + 1) begin : g_lane
            localparam [31:0] JY_32 = j / KW, JX_32 = j % KW;
            localparam signed [CB-1:0] C_JY = JY_32[CB-1:0];
            localparam signed [CB-1:0] C_JX = JX_32[CB-1:0];
            wire signed [CB-1:0] kx_sum_j = kx + C_JX;
            wire                 wrap     = (JX_32 != 0) && (kx_sum_j > C_KW1);
            wire signed [CB-1:0] kx_j = wrap ? kx_sum_j - C_KW : kx_sum_j;
            wire signed [CB-1:0] ky_j = ky + C_JY + (wrap ? C_ONE : C_ZERO);
            wire signed [CB-1:0] ry = ry0 + ky_j;
            wire signed [CB-1:0] cx = cx0 + kx_j;
            wire past = PARTIAL && (ky_j > C_KH1);     // a position k >= KH*KW
            wire pad = past || ry[CB-1] || (ry >= C_H) || cx[CB-1] || (cx >= C_W);
            wire signed [CB-1:0] slot_a = base_slot + (ry - lo);
            wire signed [CB-1:0] slot = (slot_a >= C_NROWS) ? slot_a - C_NROWS : slot_a;
            wire signed [CB-1:0] rd_addr_c = slot * C_RW + cx * C_NCW + cw;
            wire [LBA-1:0] rd_addr = pad ? {LBA{1'b0}} : rd_addr_c[LBA-1:0];
            wire unused_addr_high = ^rd_addr_c[CB-1:LBA];

            reg [XW-1:0] lb [0:LB_DEPTH-1];
            reg [XW-1:0] x_word;
            reg          rd_pad;
            always @(posedge clk) begin
                if (lb_we) lb[lb_waddr] <= x_partial_next;
            end
            always @(posedge clk) begin
                if (advance) begin
                    x_word <= lb[rd_addr];
                    rd_pad <= pad;
                end
            end
            assign x_eff[j*XW +: XW] = rd_pad ? {XW{1'b0}} : x_word;
            if (j == P_K - 1) begin : g_end    // the step ends at or past the last position
                assign ks_last = past || ((ky_j == C_KH1) && (kx_j == C_KW1));
            end
        end
    endgenerate

    // ---------------------------------------------------------------- stages 2, 3 (per lane)
    // Arithmetic is modulo 2**ACC_BITS: the exact sum fits in ACC_BITS, so truncating
    // intermediate terms to ACC_BITS cannot change it. Term t = j*P_CI + l multiplies input
    // lane l of position lane j: x_eff[t*IN_BITS] by w_word[(co*LANES + t)*W_BITS].
    reg dot_valid, dot_first, dot_last, dot_cg_last;
    reg acc_done, acc_cg_last;            // the accumulators hold a finished group
    wire [P_CO*OUT_W-1:0] result;

    generate
        for (co = 0; co < P_CO; co = co + 1) begin : g_co
            wire [B_BITS-1:0] b_raw = b_word[co*B_BITS +: B_BITS];
            wire signed [ACC_BITS-1:0] bias;
            wire signed [ACC_BITS-1:0] partial [0:LANES];
            if (ACC_BITS > B_BITS) begin : g_bias_ext
                assign bias = {{(ACC_BITS - B_BITS){b_raw[B_BITS-1]}}, b_raw};
            end else begin : g_bias_same
                assign bias = b_raw;
            end
            assign partial[0] = rd_first ? bias : {ACC_BITS{1'b0}};
            for (t = 0; t < LANES; t = t + 1) begin : g_mul
                wire signed [W_BITS-1:0]  w = w_word[(co*LANES + t)*W_BITS +: W_BITS];
                wire signed [IN_BITS-1:0] x = x_eff[t*IN_BITS +: IN_BITS];
                wire signed [PROD_BITS-1:0] prod =
                    $signed({{IN_BITS{w[W_BITS-1]}}, w}) * $signed({{W_BITS{x[IN_BITS-1]}}, x});
                wire signed [ACC_BITS-1:0] term;
                if (ACC_BITS > PROD_BITS) begin : g_ext
                    assign term = {{(ACC_BITS - PROD_BITS){prod[PROD_BITS-1]}}, prod};
                end else if (ACC_BITS == PROD_BITS) begin : g_same
                    assign term = prod;
                end else begin : g_trunc
                    assign term = prod[ACC_BITS-1:0];
                    wire unused_high = ^prod[PROD_BITS-1:ACC_BITS];
                end
                assign partial[t + 1] = partial[t] + term;
            end

            reg signed [ACC_BITS-1:0] dot;    // bias (first read only) + this read's products
            reg signed [ACC_BITS-1:0] acc;
            always @(posedge clk) begin
                if (advance) dot <= partial[LANES];
                if (advance && dot_valid) acc <= dot_first ? dot : acc + dot;
            end

            if (REQUANT != 0) begin : g_requant
                requantize #(
                    .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU)
                ) u_requantize (
                    .acc(acc),
                    .y(result[co*OUT_W +: OUT_W])
                );
            end else begin : g_raw
                assign result[co*OUT_W +: OUT_W] = acc;
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            dot_valid <= 1'b0;
            acc_done  <= 1'b0;
        end else if (advance) begin
            dot_valid   <= rd_valid;
            dot_first   <= rd_first;
            dot_last    <= rd_last;
            dot_cg_last <= rd_cg_last;
            acc_done    <= dot_valid && dot_last;
            acc_cg_last <= dot_cg_last;
        end
    end

    // ---------------------------------------------------------------- output shift register
    reg [NB-1:0]         pend;            // beats left
    reg [P_CO*OUT_W-1:0] out_sh;          // beat k at bits [k*OUT_W +: OUT_W]
    wire beat     = (pend != 0) && out_ready;
    wire out_free = (pend == 0) || ((pend == N_ONE) && out_ready);
    wire load     = acc_done && out_free;
    assign advance = !acc_done || out_free;

    always @(posedge clk) begin
        if (rst) pend <= 0;
        else if (load) pend <= acc_cg_last ? N_LAST : N_FULL;
        else if (beat) pend <= pend - N_ONE;
    end

    always @(posedge clk) begin
        if (load) out_sh <= result;
        else if (beat) out_sh <= out_sh >> OUT_W;
    end

    assign out_valid = (pend != 0);
    assign out_data  = out_sh[OUT_W-1:0];
endmodule
