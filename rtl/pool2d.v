// pool2d: max or average pooling, line-buffered and streaming (rtl/conv2d.v's skeleton).
//
// Input: one frame (C x H x W) after another, one element per handshake in channel-last
// raster order: for y, for x, for c. Output, in the same order (for oy, for ox, for c), one
// element per window of KH x KW positions at stride STRIDE (any stride; STRIDE = KH = KW is
// the usual pooling) over the input padded by PAD_T/PAD_L/PAD_B/PAD_R (each < its kernel
// size); H_OUT = (H + PAD_T + PAD_B - KH) / STRIDE + 1, W_OUT likewise (floor mode).
// Exactly docs/fixed-point.md "Convolution and pooling" (golden model: kernels/pool.py):
//   MODE = 0 (max): the largest in-image element of the window (padding is ignored).
//   MODE = 1 (average, count_include_pad = 1): s = window sum with zero padding, N = KH*KW,
//            y = floor((2*s + N) / (2*N)). For N = 2**k this is rtl/requantize.v with SHIFT k;
//            otherwise y = floor(u * R / 2**F) - M with u = 2*s + N + 2*N*M (u > 0),
//            M = 2**(IN_BITS-1), F = bitlen(4*N*M - N) + bitlen(2*N - 1), R = ceil(2**F / (2N)),
//            which is exact for every window (kernels.pool.avg_reciprocal).
//   A global average pool is KH = H, KW = W.
// Output and input have the same width and format (IN_BITS).
//
// Line buffer: a ring of NROWS = KH + STRIDE input rows of W*C elements (block RAM), its
// rows kept by rtl/line_rows.v (which documents the ring). Output register:
// rtl/engine_output.v (raw).
//
// Timing, in rising clock edges (a handshake completes at an edge). G = KH*KW (one output),
// ROW_CYC = W_OUT*C*G (one output row). For output row oy, with lo (first input row still
// held), rel (rows held after it) and hi (last row needed) of rtl/line_rows.v:
//   * Computing reads one element per edge, ROW_CYC edges with no bubbles (loops for ox,
//     for c, for ky, for kx), starting at
//         C = max(edge of the last input of row hi of its frame + 1, C of the previous
//                 output row (of this or the previous frame) + ROW_CYC).
//     At its last read (edge C + ROW_CYC - 1) input rows lo .. rel-1 are released.
//   * in_ready is high while fewer than NROWS complete input rows are held: the first
//     element of input row r (counting rows over all frames) is accepted no earlier than
//     the edge after the one that releases row r - NROWS; other elements are never held up.
//   * Output (oy, ox, c) completes its handshake at edge C + (ox*C + c + 1)*G + 2 when
//     out_ready is high (read, accumulate, output register). While out_valid && !out_ready
//     the compute pipeline stalls (output and pipeline hold); loading continues.
module pool2d #(
    parameter C        = 1,
    parameter H        = 4,
    parameter W        = 4,
    parameter KH       = 2,
    parameter KW       = 2,
    parameter STRIDE   = 2,
    parameter PAD_T    = 0,
    parameter PAD_L    = 0,
    parameter PAD_B    = 0,
    parameter PAD_R    = 0,
    parameter MODE     = 0,            // 0: max, 1: average (count_include_pad)
    parameter IN_BITS  = 8
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                in_valid,
    output wire                in_ready,
    input  wire signed [IN_BITS-1:0] in_data,
    output wire                out_valid,
    input  wire                out_ready,
    output wire signed [IN_BITS-1:0] out_data
);
    localparam W_OUT     = (W + PAD_L + PAD_R - KW) / STRIDE + 1;
    localparam G         = KH * KW;
    localparam NROWS     = KH + STRIDE;
    localparam ROW_WORDS = W * C;
    localparam LB_DEPTH  = NROWS * ROW_WORDS;
    localparam LBA       = $clog2(LB_DEPTH);
    localparam SUM_BITS  = IN_BITS + $clog2(G) + 1;      // |window sum| <= G * 2**(IN_BITS-1)
    localparam SPAN      = H + W + PAD_T + PAD_B + PAD_L + PAD_R + KH + KW + 2 * STRIDE
                           + LB_DEPTH + C;
    localparam CB        = $clog2(SPAN) + 2;

    localparam [31:0] H_32 = H, W_32 = W, S_32 = STRIDE, PL_32 = PAD_L;
    localparam [31:0] KH1_32 = KH - 1, KW1_32 = KW - 1, C1_32 = C - 1, C_32 = C;
    localparam [31:0] OX1_32 = W_OUT - 1, NROWS_32 = NROWS, RW_32 = ROW_WORDS;
    localparam signed [CB-1:0] C_ZERO  = 0;
    localparam signed [CB-1:0] C_ONE   = 1;
    localparam signed [CB-1:0] C_H     = H_32[CB-1:0];
    localparam signed [CB-1:0] C_W     = W_32[CB-1:0];
    localparam signed [CB-1:0] C_S     = S_32[CB-1:0];
    localparam signed [CB-1:0] C_MPL   = C_ZERO - PL_32[CB-1:0];
    localparam signed [CB-1:0] C_KH1   = KH1_32[CB-1:0];
    localparam signed [CB-1:0] C_KW1   = KW1_32[CB-1:0];
    localparam signed [CB-1:0] C_C1    = C1_32[CB-1:0];
    localparam signed [CB-1:0] C_C     = C_32[CB-1:0];
    localparam signed [CB-1:0] C_OX1   = OX1_32[CB-1:0];
    localparam signed [CB-1:0] C_NROWS = NROWS_32[CB-1:0];
    localparam signed [CB-1:0] C_RW    = RW_32[CB-1:0];

    reg [IN_BITS-1:0] lb [0:LB_DEPTH-1];                 // line-buffer ring

    wire advance;                         // compute pipeline moves (the output register is free)

    // ---------------------------------------------------------------- load rows
    // One element per line-buffer word; the ring rows are kept by rtl/line_rows.v.
    wire           accept = in_valid && in_ready;
    wire [LBA-1:0] lb_waddr;

    always @(posedge clk) begin
        if (accept) lb[lb_waddr] <= in_data;
    end

    // ---------------------------------------------------------------- issue reads
    reg signed [CB-1:0] ox, ch, ky, kx, cx0;
    wire signed [CB-1:0] ry0, lo, base_slot;      // rtl/line_rows.v
    wire                 can_issue;

    wire kx_last  = (kx == C_KW1);
    wire ky_last  = (ky == C_KH1);
    wire ch_last  = (ch == C_C1);
    wire ox_last  = (ox == C_OX1);
    wire win_last = kx_last && ky_last;
    wire pix_last = win_last && ch_last;
    wire row_end  = pix_last && ox_last;
    wire issue    = can_issue && advance;

    line_rows #(
        .H(H), .KH(KH), .STRIDE(STRIDE), .PAD_T(PAD_T), .PAD_B(PAD_B), .ROW_WORDS(ROW_WORDS),
        .CB(CB)
    ) u_rows (
        .clk(clk), .rst(rst), .in_ready(in_ready), .we(accept), .waddr(lb_waddr),
        .can_issue(can_issue), .issue(issue), .row_end(row_end),
        .ry0(ry0), .lo(lo), .base_slot(base_slot)
    );

    wire signed [CB-1:0] ry = ry0 + ky;
    wire signed [CB-1:0] cx = cx0 + kx;
    wire pad = ry[CB-1] || (ry >= C_H) || cx[CB-1] || (cx >= C_W);
    wire signed [CB-1:0] slot_a = base_slot + (ry - lo);
    wire signed [CB-1:0] slot = (slot_a >= C_NROWS) ? slot_a - C_NROWS : slot_a;
    wire signed [CB-1:0] rd_addr_c = slot * C_RW + cx * C_C + ch;
    wire [LBA-1:0] rd_addr = pad ? {LBA{1'b0}} : rd_addr_c[LBA-1:0];
    wire unused_addr_high = ^rd_addr_c[CB-1:LBA];

    always @(posedge clk) begin
        if (rst) begin
            ox        <= C_ZERO;
            ch        <= C_ZERO;
            ky        <= C_ZERO;
            kx        <= C_ZERO;
            cx0       <= C_MPL;
        end else if (issue) begin
            kx      <= kx_last ? C_ZERO : kx + C_ONE;
            if (kx_last) ky <= ky_last ? C_ZERO : ky + C_ONE;
            if (win_last) ch <= ch_last ? C_ZERO : ch + C_ONE;
            if (pix_last) begin
                ox  <= ox_last ? C_ZERO : ox + C_ONE;
                cx0 <= ox_last ? C_MPL : cx0 + C_S;
            end
        end
    end

    // ---------------------------------------------------------------- stage 1: read
    reg [IN_BITS-1:0] x_word;
    reg rd_valid, rd_first, rd_last, rd_pad;

    always @(posedge clk) begin
        if (advance) x_word <= lb[rd_addr];
    end

    always @(posedge clk) begin
        if (rst) begin
            rd_valid <= 1'b0;
        end else if (advance) begin
            rd_valid <= issue;
            rd_first <= (ky == C_ZERO) && (kx == C_ZERO);
            rd_last  <= win_last;
            rd_pad   <= pad;
        end
    end

    // ---------------------------------------------------------------- stage 2: reduce
    // Max ignores padding by reading it as the smallest value (every window holds an image
    // element); the average adds padding as 0.
    localparam [IN_BITS-1:0] PAD_VALUE = (MODE == 0) ? {1'b1, {(IN_BITS-1){1'b0}}} : {IN_BITS{1'b0}};
    wire signed [IN_BITS-1:0]  v = rd_pad ? PAD_VALUE : x_word;
    wire signed [SUM_BITS-1:0] v_ext = {{(SUM_BITS - IN_BITS){v[IN_BITS-1]}}, v};
    reg  signed [SUM_BITS-1:0] red;       // running max or sum
    reg red_done;
    wire signed [IN_BITS-1:0] result;

    always @(posedge clk) begin
        if (advance && rd_valid) begin
            if (rd_first) red <= v_ext;
            else if (MODE == 0) red <= (v_ext > red) ? v_ext : red;
            else red <= red + v_ext;
        end
    end

    always @(posedge clk) begin
        if (rst) red_done <= 1'b0;
        else if (advance) red_done <= rd_valid && rd_last;
    end

    generate
        if (MODE == 0) begin : g_max
            assign result = red[IN_BITS-1:0];
            wire unused_red_high = ^red[SUM_BITS-1:IN_BITS];
        end else if ((G & (G - 1)) == 0) begin : g_avg_shift
            requantize #(
                .ACC_BITS(SUM_BITS), .OUT_BITS(IN_BITS), .SHIFT($clog2(G)), .RELU(0)
            ) u_requantize (
                .acc(red),
                .y(result)
            );
        end else begin : g_avg_recip
            // u = 2*s + N + 2*N*M in [N, 4*N*M - N]; y = floor(u * R / 2**F) - M.
            localparam [63:0] M_64  = 64'd1 << (IN_BITS - 1);
            localparam [31:0] G_32  = G;
            localparam [63:0] N_64  = {32'd0, G_32};
            localparam [63:0] D_64  = 2 * N_64;
            localparam [63:0] UMAX  = 4 * N_64 * M_64 - N_64;
            localparam U_BITS       = $clog2(UMAX + 1);
            localparam F            = U_BITS + $clog2(D_64);
            localparam [63:0] R_64  = ((64'd1 << F) + D_64 - 1) / D_64;
            localparam R_BITS       = $clog2(R_64 + 1);
            localparam P_BITS       = U_BITS + R_BITS;
            localparam [63:0] OFF_64 = N_64 + D_64 * M_64;
            localparam [U_BITS-1:0] OFF = OFF_64[U_BITS-1:0];
            localparam [R_BITS-1:0] R   = R_64[R_BITS-1:0];
            localparam [IN_BITS-1:0] M  = M_64[IN_BITS-1:0];
            // 2*s + OFF modulo 2**U_BITS is u itself (0 < u < 2**U_BITS)
            wire [SUM_BITS:0] two_s = {red, 1'b0};
            wire [U_BITS-1:0] two_s_u;
            if (U_BITS > SUM_BITS + 1) begin : g_ext
                assign two_s_u = {{(U_BITS - SUM_BITS - 1){two_s[SUM_BITS]}}, two_s};
            end else begin : g_trunc
                assign two_s_u = two_s[U_BITS-1:0];
                if (U_BITS < SUM_BITS + 1) begin : g_unused
                    wire unused_two_s_high = ^two_s[SUM_BITS:U_BITS];
                end
            end
            wire [U_BITS-1:0] u = two_s_u + OFF;
            wire [P_BITS-1:0] prod = {{R_BITS{1'b0}}, u} * {{U_BITS{1'b0}}, R};
            wire [P_BITS-1:0] q = prod >> F;               // < 2**IN_BITS
            assign result = q[IN_BITS-1:0] - M;
            wire unused_q_high = ^q[P_BITS-1:IN_BITS];
        end
    endgenerate

    // ---------------------------------------------------------------- stage 3: output register
    // rtl/engine_output.v, raw (the result is already the IN_BITS output).
    engine_output #(
        .ACC_BITS(IN_BITS), .OUT_BITS(IN_BITS), .SHIFT(0), .RELU(0), .REQUANT(0)
    ) u_output (
        .clk(clk), .rst(rst), .load(red_done), .last(1'b1), .acc(result), .free(advance),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );
endmodule
