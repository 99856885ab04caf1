// conv2d: one 2-D convolution layer (groups = 1, or depthwise: DEPTHWISE = 1), line-buffered and
// streaming, P_CO x P_CI x P_K multipliers (depthwise P_CO x P_K), weights and bias in ROM.
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
// Block-circulant weights (CIRC_B = b > 0; docs/fixed-point.md "Block-circulant convolutions"):
// at every kernel position W[:, :, ky, kx] is block-circulant, W[i*b + r, j*b + c] =
// v[i, j][(r - c) mod b] with C_OUT, C_IN padded to whole blocks, and P_CO, P_CI are multiples of
// b (they may cover padded channels: padded inputs are zero lanes of the line buffer, padded
// outputs are never emitted). A W_FILE word then holds the SW = P_CO*P_K*P_CI / b weights of the
// (P_CO/b)*P_K*(P_CI/b) defining vectors of its blocks instead of all P_CO*P_K*P_CI weights:
// element d of v[g*P_CO/b + pb, cw*P_CI/b + qb] of position ks*P_K + j at bits
// [(((pb*P_K + j)*(P_CI/b) + qb)*b + d)*W_BITS +: W_BITS] (kernels/conv_rom.py,
// circulant_conv_rom_words), and weight lane (co*P_K + j)*P_CI + l of the multipliers is
// wired to element (co - l) mod b of vector ((co/b)*P_K + j)*(P_CI/b) + l/b. The ROM is b
// times narrower; multipliers, cycles and values are unchanged. CIRC_B = 0: dense words (above).
//
// Depthwise (DEPTHWISE = 1; group == C_IN == C_OUT, docs/fixed-point.md
// "Engines"): acc[c, oy, ox] = B[c] + sum_{ky,kx} W[c, 0, ky, kx] * x_pad[c, oy*STRIDE + ky,
// ox*STRIDE + kx]. Requires P_CI = P_CO, C_IN = C_OUT, CIRC_B = 0. Output-channel group g reads
// only channel word cw = g (channels g*P_CO .. g*P_CO + P_CO - 1, the group's own channels), so
// a group takes G = NKS reads (not NKS*NCW), and multiplier lane p multiplies input lane p only.
// W_FILE then holds NCG*NKS words of P_CO*P_K weights (kernels/conv_rom.py,
// depthwise_conv_rom_words): word g*NKS + ks packs W[g*P_CO + p, 0, ky, kx] of position
// k = ks*P_K + j at bits [(p*P_K + j)*W_BITS +: W_BITS] (zero past C_OUT, KH*KW);
// rtl/depthwise_word_expand.v wires it to the P_CO*P_K*P_CO lanes with zeros off the diagonal,
// whose multipliers synthesis removes: P_CO*P_K multipliers. B_FILE, the line buffer, the
// requantize and the timing below are as for groups = 1, with G = NKS.
//
// Protected ROMs (PROTECT; kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): with
// PROTECT = 1 (even parity) or 2 (SECDED) each word of both ROMs is stored as its codeword, the
// data bits low and the check bits above them (kernels.rom.write_mem(..., protection=...)):
// W_FILE words are WD + C(WD) bits (WD = SW*W_BITS, SW = P_CO*P_K*P_CI / max(CIRC_B, 1) stored
// weights; DEPTHWISE: SW = P_CO*P_K), B_FILE words P_CO*B_BITS + C(P_CO*B_BITS), with C(D) the check bits of D data
// bits. Each registered read is decoded by rtl/rom_port.v (which defines C) in the same cycle (no added
// cycle: the timing below holds for every PROTECT). `fault` is sticky, cleared by rst: it rises
// at the edge after a used word decodes as detected (parity: an odd number of flips; SECDED:
// two): a weight word read for an output, the bias word at a group's first read. SECDED
// corrects a single flip silently. With PROTECT = 0 fault stays low.
// PROTECT_LANES (with PROTECT != 0): 0 one code per ROM word (above); 1 one code per lane, lane
// = one stored weight or one bias: W_FILE words are SW lanes of W_BITS bits, stored
// WD + SW*C(W_BITS) bits; B_FILE words P_CO lanes of B_BITS bits, stored
// BD + P_CO*C(B_BITS) bits; lane i's check bits at [D + i*C +: C] of its word (D = WD or BD;
// kernels.rom.write_mem(..., protection, lanes)). A flip in each of several weights of one
// word is then corrected; two in one weight detected. Same timing.
//
// Line buffer: a ring of NROWS = KH + STRIDE input rows (W*NCW words each, block or LUT
// RAM), its rows kept by rtl/line_rows.v (which documents the ring); the input elements are
// packed P_CI to a word by rtl/word_pack.v. For P_K reads per cycle the ring is kept in P_K
// identical copies, written together, each with one read port (lane j reads position
// ks*P_K + j): a block RAM has at most two ports, so synthesis would copy a memory of P_K
// read ports anyway; explicit copies keep each a plain one-write, one-read memory that yosys
// maps as for P_K = 1.
//
// Requirements on the instantiator: ACC_BITS is wide enough that no accumulator overflows
// (conv_accumulator_bits), B_BITS <= ACC_BITS, every padding < its kernel size,
// 1 <= P_K <= KH*KW; with CIRC_B > 0, P_CO and P_CI multiples of CIRC_B; with DEPTHWISE,
// P_CI = P_CO, C_IN = C_OUT and CIRC_B = 0.
//
// Timing, in rising clock edges (a handshake completes at an edge). G = NKS*NCW = ceil(KH*KW /
// P_K)*NCW (reads per output-channel group; DEPTHWISE: G = NKS), ROW_CYC = W_OUT*NCG*G (one
// output row). For output
// row oy, with lo (first input row still held), rel (rows held after it) and hi (last row
// needed) of rtl/line_rows.v:
//   * Computing reads one ROM word (and P_K line-buffer words) per edge, ROW_CYC edges with no
//     bubbles (loops for ox, for group g, for kernel step ks, for cw; DEPTHWISE: cw = g, no
//     cw loop), starting at
//         C = max(edge of the last input of row hi of its frame + 1, C of the previous
//                 output row (of this or the previous frame) + ROW_CYC).
//     At its last read (edge C + ROW_CYC - 1) input rows lo .. rel-1 are released.
//   * in_ready is high while fewer than NROWS complete input rows are held: the first
//     element of input row r (counting rows over all frames) is accepted no earlier than
//     the edge after the one that releases row r - NROWS; other elements are never held up.
//   * With G >= P_CO (compiler/passes/lower.py plans only such P_CO, P_CI, P_K), output
//     (oy, ox, g*P_CO + p) completes its handshake at edge
//         C + (ox*NCG + g + 1)*G + 3 + p
//     when out_ready is high (ROM read, products and accumulate in rtl/mac_lanes.v, then the
//     P_CO results of a group leave one per edge from the output shift register of
//     rtl/engine_output.v). With G < P_CO the shift register paces the groups (one group per
//     >= P_CO edges; values are unaffected).
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
    parameter CIRC_B   = 0,            // 0 dense weight ROM; b: block-circulant, one vector per block
    parameter DEPTHWISE = 0,           // 1: group == C_IN == C_OUT, P_CI = P_CO (header)
    parameter IN_BITS  = 8,
    parameter W_BITS   = 8,
    parameter B_BITS   = 16,
    parameter ACC_BITS = 24,
    parameter OUT_BITS = 8,
    parameter SHIFT    = 7,
    parameter RELU     = 1,
    parameter REQUANT  = 1,            // 1: requantized OUT_BITS outputs; 0: raw accumulators
    parameter PROTECT  = 0,            // ROM words: 0 plain, 1 even parity, 2 SECDED (rtl/rom_port.v)
    parameter PROTECT_LANES = 0,       // 0 one code per ROM word; 1 one code per weight / bias
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
    output wire signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data,
    output wire                fault           // sticky: a used ROM word was uncorrectable
);
    localparam W_OUT     = (W + PAD_L + PAD_R - KW) / STRIDE + 1;
    localparam NCW       = (C_IN + P_CI - 1) / P_CI;      // line-buffer words per pixel
    localparam NCG       = (C_OUT + P_CO - 1) / P_CO;     // output-channel groups
    localparam NKS       = (KH * KW + P_K - 1) / P_K;     // kernel steps per group
    localparam G         = NKS * ((DEPTHWISE != 0) ? 1 : NCW);  // reads per group (depthwise: cw = g)
    localparam PARTIAL   = (KH * KW) % P_K != 0;          // the last step reaches past KH*KW
    localparam LANES     = P_K * P_CI;                    // multipliers per output channel
    localparam NROWS     = KH + STRIDE;                   // line-buffer rows
    localparam ROW_WORDS = W * NCW;
    localparam LB_DEPTH  = NROWS * ROW_WORDS;
    localparam W_DEPTH   = NCG * G;
    localparam LAST_N    = C_OUT - (NCG - 1) * P_CO;      // channels in the last group
    localparam LBA       = $clog2(LB_DEPTH);
    localparam WA        = (W_DEPTH > 1) ? $clog2(W_DEPTH) : 1;
    localparam BA        = (NCG > 1) ? $clog2(NCG) : 1;
    localparam XW        = P_CI * IN_BITS;                // a line-buffer word
    localparam CW_BITS   = (NCW > 1) ? $clog2(NCW) : 1;
    // Compute-side integers (coordinates may be negative): one signed width for all.
    localparam SPAN      = H + W + PAD_T + PAD_B + PAD_L + PAD_R + KH + KW + 2 * STRIDE
                           + LB_DEPTH + NCG + P_K;
    localparam CB        = $clog2(SPAN) + 2;
    // ROM words: data bits, then check bits (their width: rtl/rom_port.v).
    localparam CB_DIV    = (CIRC_B > 0) ? CIRC_B : 1;
    localparam SW        = (DEPTHWISE != 0) ? P_CO * P_K : P_CO * LANES / CB_DIV;  // weights a word
    localparam WD        = SW * W_BITS;
    localparam FD        = P_CO * LANES * W_BITS;         // the multipliers' weights per cycle
    localparam BD        = P_CO * B_BITS;
    localparam W_LANES   = (PROTECT_LANES != 0) ? SW : 1;             // codes per weight word
    localparam B_LANES   = (PROTECT_LANES != 0) ? P_CO : 1;           // codes per bias word

    // Constants at the widths they are used at.
    localparam [31:0] H_32 = H, W_32 = W, S_32 = STRIDE, PL_32 = PAD_L;
    localparam [31:0] KH1_32 = KH - 1, KW_32 = KW, KW1_32 = KW - 1, NCW1_32 = NCW - 1, NCW_32 = NCW;
    localparam [31:0] DKY_32 = P_K / KW, DKX_32 = P_K % KW;
    localparam [31:0] NCG1_32 = NCG - 1, OX1_32 = W_OUT - 1;
    localparam [31:0] NROWS_32 = NROWS, RW_32 = ROW_WORDS;
    localparam signed [CB-1:0] C_ZERO  = 0;
    localparam signed [CB-1:0] C_ONE   = 1;
    localparam signed [CB-1:0] C_H     = H_32[CB-1:0];
    localparam signed [CB-1:0] C_W     = W_32[CB-1:0];
    localparam signed [CB-1:0] C_S     = S_32[CB-1:0];
    localparam signed [CB-1:0] C_MPL   = C_ZERO - PL_32[CB-1:0];
    localparam signed [CB-1:0] C_KH1   = KH1_32[CB-1:0];
    localparam signed [CB-1:0] C_KW    = KW_32[CB-1:0];
    localparam signed [CB-1:0] C_KW1   = KW1_32[CB-1:0];
    localparam signed [CB-1:0] C_DKY   = DKY_32[CB-1:0];   // a kernel step advances P_K positions:
    localparam signed [CB-1:0] C_DKX   = DKX_32[CB-1:0];   //   DKY rows and DKX columns
    localparam signed [CB-1:0] C_NCW1  = NCW1_32[CB-1:0];
    localparam signed [CB-1:0] C_NCW   = NCW_32[CB-1:0];
    localparam signed [CB-1:0] C_NCG1  = NCG1_32[CB-1:0];
    localparam signed [CB-1:0] C_OX1   = OX1_32[CB-1:0];
    localparam signed [CB-1:0] C_NROWS = NROWS_32[CB-1:0];
    localparam signed [CB-1:0] C_RW    = RW_32[CB-1:0];

    // Memories: the ROMs are rtl/rom_port.v instances (stage 1), the line-buffer ring P_K copies
    // in g_lane below.

    wire advance;                                        // compute pipeline moves

    // ---------------------------------------------------------------- load rows
    // Elements are packed P_CI to a word (rtl/word_pack.v, groups of C_IN: a pixel); the ring
    // rows are kept by rtl/line_rows.v.
    wire               accept = in_valid && in_ready;
    wire               lb_we;             // a word completes: write it to every ring copy
    wire [XW-1:0]      lb_wdata;
    wire [LBA-1:0]     lb_waddr;
    wire [CW_BITS-1:0] unused_load_cw;    // word within the pixel (the ring counts words)
    wire               unused_pix_done;

    word_pack #(.N(C_IN), .P(P_CI), .IN_BITS(IN_BITS)) u_pack (
        .clk(clk), .rst(rst), .accept(accept), .in_data(in_data),
        .we(lb_we), .word(lb_wdata), .addr(unused_load_cw), .last(unused_pix_done)
    );

    // ---------------------------------------------------------------- issue reads
    reg signed [CB-1:0] ox, cg, cw;
    reg signed [CB-1:0] ky, kx;           // the kernel step's first position (lane 0)
    reg signed [CB-1:0] cx0;              // ox*STRIDE - PAD_L
    wire signed [CB-1:0] ry0;             // oy*STRIDE - PAD_T    (rtl/line_rows.v)
    wire signed [CB-1:0] lo;              // first held input row of this frame
    wire signed [CB-1:0] base_slot;       // its ring slot
    wire                 can_issue;
    reg [WA-1:0]        w_addr;

    wire cw_last  = (DEPTHWISE != 0) || (cw == C_NCW1);  // depthwise: one word, cw stays 0
    wire signed [CB-1:0] cw_rd = (DEPTHWISE != 0) ? cg : cw;   // the channel word read
    wire ks_last;                         // the last kernel step (from its last lane, g_lane)
    wire cg_last  = (cg == C_NCG1);
    wire ox_last  = (ox == C_OX1);
    wire grp_last = cw_last && ks_last;
    wire pix_last = grp_last && cg_last;
    wire row_end  = pix_last && ox_last;
    wire issue    = can_issue && advance;

    line_rows #(
        .H(H), .KH(KH), .STRIDE(STRIDE), .PAD_T(PAD_T), .PAD_B(PAD_B), .ROW_WORDS(ROW_WORDS),
        .CB(CB)
    ) u_rows (
        .clk(clk), .rst(rst), .in_ready(in_ready), .we(lb_we), .waddr(lb_waddr),
        .can_issue(can_issue), .issue(issue), .row_end(row_end),
        .ry0(ry0), .lo(lo), .base_slot(base_slot)
    );

    // The next kernel step's first position: P_K positions on, one column wrap at most.
    wire signed [CB-1:0] kx_sum  = kx + C_DKX;
    wire                 kx_wrap = (DKX_32 != 0) && (kx_sum > C_KW1);
    wire signed [CB-1:0] kx_step = kx_wrap ? kx_sum - C_KW : kx_sum;
    wire signed [CB-1:0] ky_step = ky + C_DKY + (kx_wrap ? C_ONE : C_ZERO);
    wire [BA-1:0]  b_addr = cg[BA-1:0];
    wire unused_cg_high = ^cg[CB-1:BA];

    always @(posedge clk) begin
        if (rst) begin
            ox        <= C_ZERO;
            cg        <= C_ZERO;
            ky        <= C_ZERO;
            kx        <= C_ZERO;
            cw        <= C_ZERO;
            cx0       <= C_MPL;
            w_addr    <= 0;
        end else if (issue) begin
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
        end
    end

    // ---------------------------------------------------------------- stage 1: reads
    // Registered ROM reads enabled by `advance`, decoded after their registers (rtl/rom_port.v;
    // a pass-through with PROTECT = 0).
    wire [P_K*XW-1:0]           x_eff;    // the P_K words read, padding zeroed
    reg rd_valid, rd_first, rd_last, rd_cg_last;

    wire [WD-1:0] w_word;                 // the stored weights of the word
    wire [FD-1:0] w_full;                 // all P_CO*LANES weights (CIRC_B, DEPTHWISE: by wiring)
    wire [BD-1:0] b_word;
    wire          w_detected, b_detected, unused_w_corrected, unused_b_corrected;
    rom_port #(.DEPTH(W_DEPTH), .DATA_BITS(WD), .PROTECT(PROTECT), .LANES(W_LANES), .FILE(W_FILE)) u_w_rom (
        .clk(clk), .en(advance), .addr(w_addr),
        .data(w_word), .corrected(unused_w_corrected), .detected(w_detected)
    );
    rom_port #(.DEPTH(NCG), .DATA_BITS(BD), .PROTECT(PROTECT), .LANES(B_LANES), .FILE(B_FILE)) u_b_rom (
        .clk(clk), .en(advance), .addr(b_addr),
        .data(b_word), .corrected(unused_b_corrected), .detected(b_detected)
    );

    // Depthwise diagonal or block-circulant expansion, pure wiring (rtl/depthwise_word_expand.v,
    // rtl/circulant_word_expand.v; CIRC_B = 0: the word).
    generate
        if (DEPTHWISE != 0) begin : g_depthwise
            depthwise_word_expand #(.P_CO(P_CO), .P_K(P_K), .W_BITS(W_BITS)) u_expand (
                .word(w_word), .weights(w_full)
            );
        end else begin : g_groups1
            circulant_word_expand #(.P_CO(P_CO), .P_K(P_K), .P_CI(P_CI), .CIRC_B(CIRC_B), .W_BITS(W_BITS)) u_expand (
                .word(w_word), .weights(w_full)
            );
        end
    endgenerate

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

    // ROM fault, sticky until rst: a used word (stage 1 valid; the bias only at a group's
    // first read, where mac_lanes adds it) that decodes as detected.
    reg fault_seen;
    always @(posedge clk) begin
        if (rst) fault_seen <= 1'b0;
        else if (rd_valid && (w_detected || (rd_first && b_detected))) fault_seen <= 1'b1;
    end
    assign fault = fault_seen;

    // One ring copy per kernel position of a step. Lane j reads x[cw-th word, ry0 + ky_j,
    // cx0 + kx_j], position ks*P_K + j; padding, and positions past KH*KW, read word 0, zeroed.
    genvar j;
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
            wire signed [CB-1:0] rd_addr_c = slot * C_RW + cx * C_NCW + cw_rd;
            wire [LBA-1:0] rd_addr = pad ? {LBA{1'b0}} : rd_addr_c[LBA-1:0];
            wire unused_addr_high = ^rd_addr_c[CB-1:LBA];

            reg [XW-1:0] lb [0:LB_DEPTH-1];
            reg [XW-1:0] x_word;
            reg          rd_pad;
            always @(posedge clk) begin
                if (lb_we) lb[lb_waddr] <= lb_wdata;
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

    // -------------------------------------------------------- stages 2, 3: products, accumulate
    // rtl/mac_lanes.v with P_CO accumulators of LANES = P_K*P_CI multipliers: term
    // t = j*P_CI + l multiplies input lane l of position lane j, x_eff[t*IN_BITS], by
    // w_full[(co*LANES + t)*W_BITS], which is mac_lanes' layout.
    wire [P_CO*ACC_BITS-1:0] acc;
    wire                     acc_done;    // the accumulators hold a finished group
    reg                      dot_cg_last, acc_cg_last;

    mac_lanes #(
        .N_ACC(P_CO), .P(LANES), .IN_BITS(IN_BITS), .W_BITS(W_BITS), .B_BITS(B_BITS),
        .ACC_BITS(ACC_BITS)
    ) u_lanes (
        .clk(clk), .rst(rst), .advance(advance),
        .valid(rd_valid), .first(rd_first), .last(rd_last),
        .x(x_eff), .w(w_full), .bias(b_word), .acc(acc), .done(acc_done)
    );

    always @(posedge clk) begin
        if (advance && !rst) begin       // the tags of mac_lanes' stages 2, 3
            dot_cg_last <= rd_cg_last;
            acc_cg_last <= dot_cg_last;
        end
    end

    // ---------------------------------------------------------------- output shift register
    // rtl/engine_output.v with P_CO beats per group (LAST_N in the last one). The pipeline
    // moves unless a finished group waits for the shift register.
    wire out_free;
    assign advance = !acc_done || out_free;

    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT),
        .BEATS(P_CO), .LAST_BEATS(LAST_N)
    ) u_output (
        .clk(clk), .rst(rst), .load(acc_done), .last(acc_cg_last), .acc(acc), .free(out_free),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );
endmodule
