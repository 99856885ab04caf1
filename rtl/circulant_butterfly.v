// circulant_butterfly: the FFT butterflies of rtl/circulant_mac.v (BF units, one radix-2 DIT
// stage step per cycle), their twiddle ROM, and the U >= BF complex multipliers the engine
// shares between the butterflies and its spectral lanes. Combinational. Golden model:
// kernels.circulant_mac.fft_fixed (one stage of its loop); docs/fixed-point.md
// "Block-circulant layers (FFT)".
//
// Butterfly unit u (< BF), given the stage s = stage + 1 and the cycle idx, works on
// butterfly m = idx*BF + u of the stage (the in-place buffer of B values, bit-reversed input
// order): half = 2**(s-1), j = m mod half,
//   top_a = (m - j)*2 + j,  bot_a = top_a + half,  twiddle k = j * B / 2**s,
//   w = cos_q[k] -+ i sin_q[k] (forward: minus; inverse: plus; kernels.circulant_mac.twiddles),
//   t = rshift_round(w * c, TW_FRAC) (real and imaginary part; c the value at bot_a),
//   new_top = rshift_round(a + t, 1),  new_bot = rshift_round(a - t, 1)  (a the value at top_a).
// The caller reads the buffer at top_a, bot_a into top_*, bot_* and writes new_* back.
//
// Multiplier u (< U): with mac_phase low, butterfly u's w * c (zero operands for u >= BF); with
// mac_phase high the spectral operands sm_*[u]. prod = a * b exactly (CW bits), by three real
// multiplies (Gauss). DATA_BITS: the buffer width (the a-side); MB = max(TW_FRAC + 2,
// SPEC_BITS): the b-side (twiddles, weight spectra). The caller keeps the U multipliers busy
// with one of the two at a time.
//
// Twiddle ROM (TW_FILE; kernels/circulant_rom.py twiddle_rom_words): B/2 words of
// 2*(TW_FRAC+2) bits, word k = {sin_q[k], cos_q[k]}, read combinationally by every unit
// (rtl/rom_port.v, PROTECT / PROTECT_LANES as circulant_mac's: with PROTECT_LANES = 1 the cos
// and sin halves are one code each). tw_detected[u]: unit u's twiddle word decodes as detected.
// B is a power of two >= 2; BF a power of two dividing B/2.
`default_nettype none
module circulant_butterfly #(
    parameter B         = 4,
    parameter BF        = 1,
    parameter U         = 1,       // complex multipliers, >= BF
    parameter DATA_BITS = 24,
    parameter TW_FRAC   = 16,
    parameter SPEC_BITS = 16,
    parameter PROTECT   = 0,
    parameter PROTECT_LANES = 0,
    parameter TW_FILE   = "twiddles.mem",
    // derived (not to be set): the ports' widths
    parameter L         = $clog2(B),
    parameter ST_BITS   = (L > 1) ? $clog2(L) : 1,
    parameter MB        = (TW_FRAC + 2 > SPEC_BITS) ? TW_FRAC + 2 : SPEC_BITS,
    parameter CW        = DATA_BITS + MB + 1
) (
    input  wire [ST_BITS-1:0]      stage,          // stage s - 1
    input  wire [L-1:0]            idx,            // the stage's cycle
    input  wire                    inverse,        // 0 forward FFT, 1 inverse
    output wire [BF*L-1:0]         top_a,
    output wire [BF*L-1:0]         bot_a,
    input  wire [BF*DATA_BITS-1:0] top_re,
    input  wire [BF*DATA_BITS-1:0] top_im,
    input  wire [BF*DATA_BITS-1:0] bot_re,
    input  wire [BF*DATA_BITS-1:0] bot_im,
    output wire [BF*DATA_BITS-1:0] new_top_re,
    output wire [BF*DATA_BITS-1:0] new_top_im,
    output wire [BF*DATA_BITS-1:0] new_bot_re,
    output wire [BF*DATA_BITS-1:0] new_bot_im,
    output wire [BF-1:0]           tw_detected,
    input  wire                    mac_phase,      // the multipliers take the spectral operands
    input  wire [U*DATA_BITS-1:0]  sm_ar,
    input  wire [U*DATA_BITS-1:0]  sm_ai,
    input  wire [U*MB-1:0]         sm_br,
    input  wire [U*MB-1:0]         sm_bi,
    output wire [U*CW-1:0]         prod_re,
    output wire [U*CW-1:0]         prod_im
);
    localparam HB      = B / 2;
    localparam TW_BITS = TW_FRAC + 2;
    localparam MB3     = (TW_BITS > SPEC_BITS + 1) ? TW_BITS : SPEC_BITS + 1;  // b-side sums
    localparam SUM_W   = DATA_BITS + 2;                // a +- t before halving
    localparam TD      = 2 * TW_BITS;
    localparam T_LANES = (PROTECT_LANES != 0) ? 2 : 1; // codes per twiddle word
    localparam TA_BITS = (HB > 1) ? $clog2(HB) : 1;
    localparam [31:0] ST_END_32 = L - 1;
    localparam [ST_BITS-1:0] ST_END = ST_END_32[ST_BITS-1:0];
    localparam [L-1:0] ONE_L = 1;

    wire [L-1:0] half     = ONE_L << stage;            // 2**(s-1)
    wire [L-1:0] low_mask = half - 1'b1;
    wire [31:0]  idx_32   = {{(32-L){1'b0}}, idx};

    wire [BF*TA_BITS-1:0] tw_addr;
    wire [BF*TD-1:0]      tw_word;
    wire [BF-1:0]         unused_tw_corrected;
    rom_port #(
        .DEPTH(HB), .DATA_BITS(TD), .PROTECT(PROTECT), .LANES(T_LANES), .PORTS(BF), .REGISTERED(0),
        .FILE(TW_FILE)
    ) u_tw_rom (
        .clk(1'b0), .en(1'b0), .addr(tw_addr),
        .data(tw_word), .corrected(unused_tw_corrected), .detected(tw_detected)
    );

    wire [BF*MB-1:0] tw_re_f, tw_im_f;

    genvar u;
    generate
        for (u = 0; u < BF; u = u + 1) begin : g_bf
            localparam [31:0] U_32 = u;
            wire [31:0] m_32 = idx_32 * BF + U_32;
            wire [L-1:0] m = m_32[L-1:0];
            wire [L-1:0] top = ((m & ~low_mask) << 1) | (m & low_mask);
            wire [L-1:0] bot = top | half;
            wire [L-1:0] tw_full = (m & low_mask) << (ST_END - stage);  // j * B / 2**s
            assign tw_addr[u*TA_BITS +: TA_BITS] = tw_full[TA_BITS-1:0];
            wire signed [TW_BITS-1:0] tw_cos = tw_word[u*TD +: TW_BITS];
            wire signed [TW_BITS-1:0] tw_sin = tw_word[u*TD + TW_BITS +: TW_BITS];
            wire signed [TW_BITS-1:0] tw_im  = inverse ? tw_sin : -tw_sin;   // w = cos -+ i sin
            circulant_round #(.IN_W(TW_BITS), .OUT_W(MB), .SHIFT(0)) u_tw_re (.v(tw_cos), .y(tw_re_f[u*MB +: MB]));
            circulant_round #(.IN_W(TW_BITS), .OUT_W(MB), .SHIFT(0)) u_tw_im (.v(tw_im), .y(tw_im_f[u*MB +: MB]));
            assign top_a[u*L +: L] = top;
            assign bot_a[u*L +: L] = bot;

            // t = round(w * c / 2**TW_FRAC); top' = round((a + t) / 2), bottom' = round((a - t) / 2).
            wire signed [DATA_BITS-1:0] a_re0 = top_re[u*DATA_BITS +: DATA_BITS];
            wire signed [DATA_BITS-1:0] a_im0 = top_im[u*DATA_BITS +: DATA_BITS];
            wire signed [SUM_W-1:0] t_re, t_im;
            circulant_round #(.IN_W(CW), .OUT_W(SUM_W), .SHIFT(TW_FRAC)) u_t_re (.v(prod_re[u*CW +: CW]), .y(t_re));
            circulant_round #(.IN_W(CW), .OUT_W(SUM_W), .SHIFT(TW_FRAC)) u_t_im (.v(prod_im[u*CW +: CW]), .y(t_im));
            wire signed [SUM_W-1:0] a_re = {{2{a_re0[DATA_BITS-1]}}, a_re0};
            wire signed [SUM_W-1:0] a_im = {{2{a_im0[DATA_BITS-1]}}, a_im0};
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_top_re (.v(a_re + t_re), .y(new_top_re[u*DATA_BITS +: DATA_BITS]));
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_top_im (.v(a_im + t_im), .y(new_top_im[u*DATA_BITS +: DATA_BITS]));
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_bot_re (.v(a_re - t_re), .y(new_bot_re[u*DATA_BITS +: DATA_BITS]));
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_bot_im (.v(a_im - t_im), .y(new_bot_im[u*DATA_BITS +: DATA_BITS]));
            wire unused_lane_bits = ^{tw_full, m_32};
        end

        // The shared complex multipliers: spectral operands while mac_phase, else butterfly ones.
        for (u = 0; u < U; u = u + 1) begin : g_mul
            wire signed [DATA_BITS-1:0] bf_ar, bf_ai;
            wire signed [MB-1:0] bf_br, bf_bi;
            if (u < BF) begin : g_bf_op
                assign bf_ar = bot_re[u*DATA_BITS +: DATA_BITS];
                assign bf_ai = bot_im[u*DATA_BITS +: DATA_BITS];
                assign bf_br = tw_re_f[u*MB +: MB];
                assign bf_bi = tw_im_f[u*MB +: MB];
            end else begin : g_no_bf
                assign bf_ar = {DATA_BITS{1'b0}};
                assign bf_ai = {DATA_BITS{1'b0}};
                assign bf_br = {MB{1'b0}};
                assign bf_bi = {MB{1'b0}};
            end
            wire signed [DATA_BITS-1:0] mul_ar = mac_phase ? sm_ar[u*DATA_BITS +: DATA_BITS] : bf_ar;
            wire signed [DATA_BITS-1:0] mul_ai = mac_phase ? sm_ai[u*DATA_BITS +: DATA_BITS] : bf_ai;
            wire signed [MB-1:0]        mul_br = mac_phase ? sm_br[u*MB +: MB] : bf_br;
            wire signed [MB-1:0]        mul_bi = mac_phase ? sm_bi[u*MB +: MB] : bf_bi;
            // Three real multiplies per complex product (Gauss), exact integers:
            //   k1 = br*(ar + ai), k2 = ar*(bi - br), k3 = ai*(br + bi);
            //   re = k1 - k3 = ar*br - ai*bi,  im = k1 + k2 = ar*bi + ai*br.
            // The b-side sums fit MB3 bits (twiddles: |cos +- sin| < 2**(TW_FRAC+1); spectra:
            // SPEC_BITS + 1). Operands sign-extended to the product width (so synthesis sees
            // signed multiplies and maps them onto DSP blocks, the a-side sum onto a pre-adder).
            wire signed [DATA_BITS:0] a_sum = {mul_ar[DATA_BITS-1], mul_ar} + {mul_ai[DATA_BITS-1], mul_ai};
            wire signed [MB:0] b_dif_w = {mul_bi[MB-1], mul_bi} - {mul_br[MB-1], mul_br};
            wire signed [MB:0] b_sum_w = {mul_br[MB-1], mul_br} + {mul_bi[MB-1], mul_bi};
            wire signed [MB3-1:0] b_dif, b_sum;
            circulant_round #(.IN_W(MB+1), .OUT_W(MB3), .SHIFT(0)) u_b_dif (.v(b_dif_w), .y(b_dif));
            circulant_round #(.IN_W(MB+1), .OUT_W(MB3), .SHIFT(0)) u_b_sum (.v(b_sum_w), .y(b_sum));
            wire signed [CW-1:0] k1 = $signed({{(CW-DATA_BITS-1){a_sum[DATA_BITS]}}, a_sum}) * $signed({{(CW-MB){mul_br[MB-1]}}, mul_br});
            wire signed [CW-1:0] k2 = $signed({{(CW-DATA_BITS){mul_ar[DATA_BITS-1]}}, mul_ar}) * $signed({{(CW-MB3){b_dif[MB3-1]}}, b_dif});
            wire signed [CW-1:0] k3 = $signed({{(CW-DATA_BITS){mul_ai[DATA_BITS-1]}}, mul_ai}) * $signed({{(CW-MB3){b_sum[MB3-1]}}, b_sum});
            assign prod_re[u*CW +: CW] = k1 - k3;
            assign prod_im[u*CW +: CW] = k1 + k2;
        end
    endgenerate
endmodule
`default_nettype wire
