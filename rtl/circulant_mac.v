// circulant_mac: one block-circulant dense layer computed by fixed-point FFT (CirCNN).
//
// For each input vector x (N_IN elements, streamed in index order) it computes, for
// o = 0 .. N_OUT-1 in order, the accumulator acc[o] of docs/fixed-point.md "Block-circulant
// layers (FFT)" and emits requantize(acc[o]) (OUT_BITS, rtl/requantize.v) when REQUANT != 0,
// or the raw ACC_BITS accumulator when REQUANT == 0. Golden model: kernels/circulant_mac.py
// (circulant_mac, then requantize). The weight matrix is a P x Q grid of B x B circulant blocks,
// P = ceil(N_OUT/B), Q = ceil(N_IN/B): inputs past N_IN count as 0, rows past N_OUT are not
// computed out, so N_IN and N_OUT need not be multiples of B.
//
// Datapath (one shared complex multiplier = 4 real multipliers, one butterfly per cycle):
//   1. forward FFT of each input block j (x_j * 2**FFT_GUARD, bit-reversed, radix-2 DIT,
//      every stage halved with round half up); bins 0..B/2 kept in the spectrum memory;
//   2. for each output block i and bin k: sum_j W[i,j,k] * X[j,k] (exact, MAC_BITS), rounded
//      by SPEC_SHIFT bits; bins B/2+1..B-1 are the conjugate mirror (real output);
//   3. inverse FFT (same butterfly, conjugate twiddles), real part rounded by IFFT_GUARD bits,
//      plus bias, requantize.
// All widths come from kernels.circulant_mac.plan_circulant (worst-case bounds) via
// kernels.circulant_rom.circulant_rtl_parameters; with them no input in range overflows.
//
// ROM images (layout in kernels/circulant_rom.py): W_FILE holds P*Q*H words of 2*SPEC_BITS bits
// (H = B/2 + 1), word (i*H + k)*Q + j = {im, re} of block (i, j)'s weight spectrum bin k.
// TW_FILE holds B/2 words of 2*(TW_FRAC+2) bits, word k = {sin_q[k], cos_q[k]}. B_FILE holds
// N_OUT words of B_BITS bits. B is a power of two >= 2; B_BITS <= ACC_BITS.
//
// Protected ROMs (PROTECT; kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): with
// PROTECT = 1 (even parity) or 2 (SECDED) each word of the three ROMs is stored as its
// codeword, the data bits low and the check bits above them (kernels.rom.write_mem(...,
// protection=...); kernels/circulant_rom.py write_circulant_roms): W_FILE words are
// 2*SPEC_BITS + C(2*SPEC_BITS) bits, TW_FILE words 2*(TW_FRAC+2) + C(2*(TW_FRAC+2)), B_FILE
// words B_BITS + C(B_BITS), with C(D) = 0 (PROTECT 0), 1 (PROTECT 1) or
// $clog2(D + 1 + $clog2(D + 1)) + 1 (PROTECT 2). Each read (the registered spectra read, the
// twiddle and bias reads) is decoded by rtl/rom_check.v in the same cycle (no added cycle: the
// timing below holds for every PROTECT). `fault` is sticky, cleared by rst: it rises at the
// edge after a used word decodes as detected (parity: an odd number of flips; SECDED: two): a
// spectra word in the cycle its pair is accumulated, a twiddle in a butterfly cycle, a bias
// word in an output cycle. SECDED corrects a single flip silently. With PROTECT = 0 fault
// stays low.
// PROTECT_LANES (with PROTECT != 0): 0 one code per ROM word (above); 1 one code per lane:
// W_FILE words are 2 lanes (re, im: SPEC_BITS each), stored 2*SPEC_BITS + 2*C(SPEC_BITS) bits
// (re's check bits at [2*SPEC_BITS +: C], im's above them); TW_FILE words 2 lanes (cos, sin:
// TW_FRAC+2 bits each), 2*(TW_FRAC+2) + 2*C(TW_FRAC+2) bits; B_FILE stays one lane
// (kernels.rom.write_mem(..., protection, lanes=2); kernels/circulant_rom.py
// write_circulant_roms). Same timing.
//
// Timing (clock edges at which the in/out handshakes complete), with L = log2(B):
//   load  N_IN cycles (in_ready high only while loading);
//   per input block:  B (fill) + L*B/2 (butterflies) + H (store spectrum) cycles;
//   per output block: Q*H + 1 (spectral MACs, registered ROM reads) + L*B/2 (butterflies)
//                     + its outputs, one per cycle.
//   With in_valid and out_ready held high, output o (block i = o / B, n = o % B) completes
//     N_IN + Q*(B + L*B/2 + H) + (i+1)*(Q*H + 1 + L*B/2) + i*B + n + 1
//   cycles after the first input, and the initiation interval (first input of one vector to
//   the first input of the next) is
//     N_IN + Q*(B + L*B/2 + H) + P*(Q*H + 1 + L*B/2) + N_OUT.
//   While out_valid && !out_ready the engine waits at the held output, so back-pressure only
//   adds cycles. Multiplies: 4 per butterfly and per spectral MAC; the engine has 4 multipliers.
module circulant_mac #(
    parameter N_IN       = 8,
    parameter N_OUT      = 8,
    parameter B          = 4,
    parameter IN_BITS    = 8,
    parameter TW_FRAC    = 16,
    parameter FFT_GUARD  = 8,
    parameter SPEC_BITS  = 16,
    parameter XS_BITS    = 17,     // forward spectrum width (fft_bits)
    parameter DATA_BITS  = 24,     // FFT buffer width: max(fft_bits, ifft_bits)
    parameter MAC_BITS   = 34,
    parameter SPEC_SHIFT = 8,      // may be negative (then a left shift)
    parameter IFFT_GUARD = 2,
    parameter B_BITS     = 16,
    parameter ACC_BITS   = 22,
    parameter OUT_BITS   = 8,
    parameter SHIFT      = 10,
    parameter RELU       = 1,
    parameter REQUANT    = 1,
    parameter PROTECT    = 0,      // ROM words: 0 plain, 1 even parity, 2 SECDED (rtl/rom_check.v)
    parameter PROTECT_LANES = 0,   // 0 one code per ROM word; 1 one code per re/im, cos/sin lane
    parameter W_FILE     = "spectra.mem",
    parameter TW_FILE    = "twiddles.mem",
    parameter B_FILE     = "bias.mem"
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
    localparam L       = $clog2(B);
    localparam HB      = B / 2;
    localparam H       = HB + 1;                       // bins kept: 0 .. B/2
    localparam P       = (N_OUT + B - 1) / B;
    localparam Q       = (N_IN + B - 1) / B;
    localparam TW_BITS = TW_FRAC + 2;
    localparam MB      = (TW_BITS > SPEC_BITS) ? TW_BITS : SPEC_BITS;   // multiplier B operand
    localparam CW      = DATA_BITS + MB + 1;           // a complex product's real/imag part
    localparam SUM_W   = DATA_BITS + 2;                // a +- t before halving
    // Stored ROM word widths: data + check bits (rtl/rom_check.v, kernels.rom_protect.check_bits).
    localparam WD      = 2 * SPEC_BITS;
    localparam TD      = 2 * TW_BITS;
    localparam WT_LANES = (PROTECT_LANES != 0) ? 2 : 1;  // codes per spectra / twiddle word
    localparam WL      = WD / WT_LANES;
    localparam TL      = TD / WT_LANES;
    localparam W_CODE  = WD + WT_LANES * ((PROTECT == 2) ? $clog2(WL + 1 + $clog2(WL + 1)) + 1 : (PROTECT == 1) ? 1 : 0);
    localparam TW_CODE = TD + WT_LANES * ((PROTECT == 2) ? $clog2(TL + 1 + $clog2(TL + 1)) + 1 : (PROTECT == 1) ? 1 : 0);
    localparam B_CODE  = B_BITS + ((PROTECT == 2) ? $clog2(B_BITS + 1 + $clog2(B_BITS + 1)) + 1 :
                                   (PROTECT == 1) ? 1 : 0);

    localparam XA_BITS  = (Q * B > 1) ? $clog2(Q * B) : 1;
    localparam SA_BITS  = (Q * H > 1) ? $clog2(Q * H) : 1;
    localparam WA_BITS  = (P * Q * H > 1) ? $clog2(P * Q * H) : 1;
    localparam TA_BITS  = (HB > 1) ? $clog2(HB) : 1;
    localparam OR_BITS  = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam J_BITS   = (Q > 1) ? $clog2(Q) : 1;
    localparam I_BITS   = (P > 1) ? $clog2(P) : 1;
    localparam ST_BITS  = (L > 1) ? $clog2(L) : 1;

    // Counter end values, sliced to the counters' widths.
    localparam [31:0] LI_END_32 = N_IN - 1;
    localparam [31:0] OR_END_32 = N_OUT - 1;
    localparam [31:0] J_END_32  = Q - 1;
    localparam [31:0] I_END_32  = P - 1;
    localparam [31:0] ST_END_32 = L - 1;
    localparam [31:0] N_END_32  = B - 1;
    localparam [31:0] M_END_32  = HB - 1;
    localparam [31:0] K_END_32  = HB;
    localparam [31:0] N_IN_32   = N_IN;
    localparam [XA_BITS-1:0] LI_END = LI_END_32[XA_BITS-1:0];
    localparam [OR_BITS-1:0] OR_END = OR_END_32[OR_BITS-1:0];
    localparam [J_BITS-1:0]  J_END  = J_END_32[J_BITS-1:0];
    localparam [I_BITS-1:0]  I_END  = I_END_32[I_BITS-1:0];
    localparam [ST_BITS-1:0] ST_END = ST_END_32[ST_BITS-1:0];
    localparam [L-1:0]       N_END  = N_END_32[L-1:0];
    localparam [L-1:0]       M_END  = M_END_32[L-1:0];
    localparam [L-1:0]       K_END  = K_END_32[L-1:0];     // bin B/2

    localparam [2:0] S_LOAD = 3'd0, S_FILL = 3'd1, S_BFLY = 3'd2, S_STORE = 3'd3,
                     S_MAC  = 3'd4, S_DRAIN = 3'd5, S_OUT = 3'd6;

    // ---------------------------------------------------------------- memories
    reg [W_CODE-1:0]         w_rom  [0:P*Q*H-1];    // codewords (PROTECT = 0: the words)
    reg [TW_CODE-1:0]        tw_rom [0:HB-1];
    reg [B_CODE-1:0]         b_rom  [0:N_OUT-1];
    reg [IN_BITS-1:0]        x_mem  [0:Q*B-1];      // input vector (past N_IN: never read)
    reg [2*XS_BITS-1:0]      xs_mem [0:Q*H-1];      // input spectra, word k*Q + j = {im, re}
    reg signed [DATA_BITS-1:0] buf_re [0:B-1];      // the in-place FFT buffer
    reg signed [DATA_BITS-1:0] buf_im [0:B-1];

    initial begin
        $readmemh(W_FILE, w_rom);
        $readmemh(TW_FILE, tw_rom);
        $readmemh(B_FILE, b_rom);
    end

    function [L-1:0] bit_reverse(input [L-1:0] v);
        integer bit_idx;
        begin
            for (bit_idx = 0; bit_idx < L; bit_idx = bit_idx + 1)
                bit_reverse[bit_idx] = v[L - 1 - bit_idx];
        end
    endfunction

    // ---------------------------------------------------------------- control state
    reg [2:0]         state;
    reg               inverse;     // S_BFLY: 0 forward FFT of an input block, 1 inverse FFT
    reg [XA_BITS-1:0] load_idx;    // x_mem write address
    reg [J_BITS-1:0]  blk_j;       // input block (S_FILL, S_STORE) or MAC column (S_MAC)
    reg [I_BITS-1:0]  blk_i;       // output block (S_MAC, S_BFLY inverse, S_OUT)
    reg [L-1:0]       idx;         // n (S_FILL, S_OUT), butterfly m (S_BFLY), bin k (S_STORE, S_MAC)
    reg [ST_BITS-1:0] stage;       // butterfly stage - 1
    reg [WA_BITS-1:0] w_addr;      // (i*H + k)*Q + j, counts through S_MAC
    reg [OR_BITS-1:0] out_row;     // o = i*B + n

    wire advance;                               // the output register can take a value

    assign in_ready = (state == S_LOAD);
    wire accept = in_valid && in_ready;

    // ---------------------------------------------------------------- addresses
    localparam [L-1:0] ONE_L = 1;
    wire [L-1:0] half      = ONE_L << stage;                 // 2**(s-1)
    wire [L-1:0] low_mask  = half - 1'b1;
    wire [L-1:0] bf_top    = ((idx & ~low_mask) << 1) | (idx & low_mask);
    wire [L-1:0] bf_bottom = bf_top | half;
    wire [L-1:0] tw_full   = (idx & low_mask) << (ST_END - stage);  // j * B / 2**s
    wire [TA_BITS-1:0] tw_addr = tw_full[TA_BITS-1:0];
    wire [31:0] blk_j_32   = {{(32-J_BITS){1'b0}}, blk_j};
    wire [31:0] idx_32     = {{(32-L){1'b0}}, idx};
    wire [31:0] x_addr_32  = blk_j_32 * B + idx_32;
    wire [XA_BITS-1:0] x_addr = x_addr_32[XA_BITS-1:0];
    wire [31:0] s_addr_32  = idx_32 * Q + blk_j_32;
    wire [SA_BITS-1:0] s_addr = s_addr_32[SA_BITS-1:0];
    wire x_inside          = x_addr_32 < N_IN_32;   // zero padding past N_IN
    wire unused_addr_bits  = ^{tw_full, x_addr_32, s_addr_32};

    wire [L-1:0] rd_addr = (state == S_BFLY) ? bf_top : idx;
    wire signed [DATA_BITS-1:0] top_re = buf_re[rd_addr];
    wire signed [DATA_BITS-1:0] top_im = buf_im[rd_addr];
    wire signed [DATA_BITS-1:0] bot_re = buf_re[bf_bottom];
    wire signed [DATA_BITS-1:0] bot_im = buf_im[bf_bottom];

    // ---------------------------------------------------------------- shared complex multiplier
    // The spectral operands (the large memories) are read through registers, block-RAM
    // style: the pair issued in one S_MAC cycle is multiplied and accumulated in the next,
    // tagged by the prod_* registers; S_DRAIN finishes the last pair. ROM words are decoded
    // after their read (rtl/rom_check.v, combinational; a pass-through with PROTECT = 0).
    wire [TW_CODE-1:0]     tw_code = tw_rom[tw_addr];
    reg  [W_CODE-1:0]      w_code;
    reg  [2*XS_BITS-1:0]   xs_word;
    reg                    prod_valid;   // w_word, xs_word hold a pair to accumulate
    reg                    prod_first;   // ... of input block j = 0
    reg                    prod_last;    // ... of input block j = Q-1 (bin k complete)
    reg  [L-1:0]           prod_bin;     // ... of bin k

    always @(posedge clk) begin
        w_code     <= w_rom[w_addr];
        xs_word    <= xs_mem[s_addr];
        prod_first <= (blk_j == 0);
        prod_last  <= (blk_j == J_END);
        prod_bin   <= idx;
    end

    always @(posedge clk) begin
        if (rst) prod_valid <= 1'b0;
        else     prod_valid <= (state == S_MAC);
    end

    wire [2*TW_BITS-1:0]   tw_word;
    wire [2*SPEC_BITS-1:0] w_word;
    wire                   w_detected, tw_detected, unused_w_corrected, unused_tw_corrected;
    rom_check #(.DATA_BITS(WD), .PROTECT(PROTECT), .LANES(WT_LANES)) u_w_check (
        .code(w_code), .data(w_word), .corrected(unused_w_corrected), .detected(w_detected)
    );
    rom_check #(.DATA_BITS(TD), .PROTECT(PROTECT), .LANES(WT_LANES)) u_tw_check (
        .code(tw_code), .data(tw_word), .corrected(unused_tw_corrected), .detected(tw_detected)
    );

    wire signed [TW_BITS-1:0]   tw_cos = tw_word[TW_BITS-1:0];
    wire signed [TW_BITS-1:0]   tw_sin = tw_word[2*TW_BITS-1:TW_BITS];
    wire signed [TW_BITS-1:0]   tw_im  = inverse ? tw_sin : -tw_sin;   // w = cos -+ i sin
    wire signed [SPEC_BITS-1:0] w_re   = w_word[SPEC_BITS-1:0];
    wire signed [SPEC_BITS-1:0] w_im   = w_word[2*SPEC_BITS-1:SPEC_BITS];
    wire signed [XS_BITS-1:0]   xs_re  = xs_word[XS_BITS-1:0];
    wire signed [XS_BITS-1:0]   xs_im  = xs_word[2*XS_BITS-1:XS_BITS];

    // Operands resized (sign-extended) to the multiplier's widths; circulant_round with
    // SHIFT 0 is a plain resize.
    wire signed [DATA_BITS-1:0] xs_re_w, xs_im_w;
    wire signed [MB-1:0] w_re_w, w_im_w, tw_cos_w, tw_im_w;
    circulant_round #(.IN_W(XS_BITS), .OUT_W(DATA_BITS), .SHIFT(0)) u_xs_re (.v(xs_re), .y(xs_re_w));
    circulant_round #(.IN_W(XS_BITS), .OUT_W(DATA_BITS), .SHIFT(0)) u_xs_im (.v(xs_im), .y(xs_im_w));
    circulant_round #(.IN_W(SPEC_BITS), .OUT_W(MB), .SHIFT(0)) u_w_re (.v(w_re), .y(w_re_w));
    circulant_round #(.IN_W(SPEC_BITS), .OUT_W(MB), .SHIFT(0)) u_w_im (.v(w_im), .y(w_im_w));
    circulant_round #(.IN_W(TW_BITS), .OUT_W(MB), .SHIFT(0)) u_tw_re (.v(tw_cos), .y(tw_cos_w));
    circulant_round #(.IN_W(TW_BITS), .OUT_W(MB), .SHIFT(0)) u_tw_im (.v(tw_im), .y(tw_im_w));

    wire mac_phase = prod_valid;
    wire signed [DATA_BITS-1:0] mul_ar = mac_phase ? xs_re_w : bot_re;
    wire signed [DATA_BITS-1:0] mul_ai = mac_phase ? xs_im_w : bot_im;
    wire signed [MB-1:0]        mul_br = mac_phase ? w_re_w : tw_cos_w;
    wire signed [MB-1:0]        mul_bi = mac_phase ? w_im_w : tw_im_w;

    // Signed operands sign-extended to the product width (so synthesis sees a DATA_BITS x MB
    // signed multiply and maps it onto DSP blocks).
    wire signed [CW-1:0] prod_rr = $signed({{(MB+1){mul_ar[DATA_BITS-1]}}, mul_ar}) * $signed({{(DATA_BITS+1){mul_br[MB-1]}}, mul_br});
    wire signed [CW-1:0] prod_ii = $signed({{(MB+1){mul_ai[DATA_BITS-1]}}, mul_ai}) * $signed({{(DATA_BITS+1){mul_bi[MB-1]}}, mul_bi});
    wire signed [CW-1:0] prod_ri = $signed({{(MB+1){mul_ar[DATA_BITS-1]}}, mul_ar}) * $signed({{(DATA_BITS+1){mul_bi[MB-1]}}, mul_bi});
    wire signed [CW-1:0] prod_ir = $signed({{(MB+1){mul_ai[DATA_BITS-1]}}, mul_ai}) * $signed({{(DATA_BITS+1){mul_br[MB-1]}}, mul_br});
    wire signed [CW-1:0] prod_re = prod_rr - prod_ii;
    wire signed [CW-1:0] prod_im = prod_ri + prod_ir;

    // ---------------------------------------------------------------- butterfly
    // t = round(w * c / 2**TW_FRAC); top' = round((a + t) / 2), bottom' = round((a - t) / 2).
    wire signed [SUM_W-1:0] t_re, t_im;
    circulant_round #(.IN_W(CW), .OUT_W(SUM_W), .SHIFT(TW_FRAC)) u_t_re (.v(prod_re), .y(t_re));
    circulant_round #(.IN_W(CW), .OUT_W(SUM_W), .SHIFT(TW_FRAC)) u_t_im (.v(prod_im), .y(t_im));

    wire signed [SUM_W-1:0] a_re = {{2{top_re[DATA_BITS-1]}}, top_re};
    wire signed [SUM_W-1:0] a_im = {{2{top_im[DATA_BITS-1]}}, top_im};
    wire signed [DATA_BITS-1:0] bf_top_re, bf_top_im, bf_bot_re, bf_bot_im;
    circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_top_re (.v(a_re + t_re), .y(bf_top_re));
    circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_top_im (.v(a_im + t_im), .y(bf_top_im));
    circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_bot_re (.v(a_re - t_re), .y(bf_bot_re));
    circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_bot_im (.v(a_im - t_im), .y(bf_bot_im));

    // ---------------------------------------------------------------- spectral MAC
    // Modulo 2**MAC_BITS: every partial sum fits MAC_BITS, so truncated terms are exact.
    reg  signed [MAC_BITS-1:0] mac_re, mac_im;
    wire signed [MAC_BITS-1:0] term_re, term_im;
    circulant_round #(.IN_W(CW), .OUT_W(MAC_BITS), .SHIFT(0)) u_term_re (.v(prod_re), .y(term_re));
    circulant_round #(.IN_W(CW), .OUT_W(MAC_BITS), .SHIFT(0)) u_term_im (.v(prod_im), .y(term_im));
    wire signed [MAC_BITS-1:0] sum_re = prod_first ? term_re : mac_re + term_re;
    wire signed [MAC_BITS-1:0] sum_im = prod_first ? term_im : mac_im + term_im;
    wire signed [DATA_BITS-1:0] v_re, v_im;
    circulant_round #(.IN_W(MAC_BITS), .OUT_W(DATA_BITS), .SHIFT(SPEC_SHIFT)) u_v_re (.v(sum_re), .y(v_re));
    circulant_round #(.IN_W(MAC_BITS), .OUT_W(DATA_BITS), .SHIFT(SPEC_SHIFT)) u_v_im (.v(sum_im), .y(v_im));
    wire mirror_bin = (prod_bin != 0) && (prod_bin != K_END);   // bins 1 .. B/2-1: mirror B-k

    // ---------------------------------------------------------------- output value
    wire signed [ACC_BITS-1:0] conv;                  // round(Re v[n] / 2**IFFT_GUARD)
    circulant_round #(.IN_W(DATA_BITS), .OUT_W(ACC_BITS), .SHIFT(IFFT_GUARD)) u_conv (.v(top_re), .y(conv));
    wire [B_CODE-1:0] b_code = b_rom[out_row];
    wire [B_BITS-1:0] b_word;
    wire              b_detected, unused_b_corrected;
    rom_check #(.DATA_BITS(B_BITS), .PROTECT(PROTECT)) u_b_check (
        .code(b_code), .data(b_word), .corrected(unused_b_corrected), .detected(b_detected)
    );
    wire signed [ACC_BITS-1:0] bias;
    circulant_round #(.IN_W(B_BITS), .OUT_W(ACC_BITS), .SHIFT(0)) u_bias (.v(b_word), .y(bias));
    wire signed [ACC_BITS-1:0] acc = conv + bias;

    // ---------------------------------------------------------------- FFT buffer writes
    // Two write ports: a butterfly writes both outputs, a MAC result writes bin k and its mirror.
    wire [IN_BITS-1:0] x_word = x_mem[x_addr];
    wire signed [DATA_BITS-1:0] fill_re;
    circulant_round #(.IN_W(IN_BITS), .OUT_W(DATA_BITS), .SHIFT(-FFT_GUARD)) u_fill (
        .v(x_inside ? x_word : {IN_BITS{1'b0}}), .y(fill_re));

    wire mac_last = (blk_j == J_END);   // issuing the last input block of bin k
    reg                 we_a, we_b;
    reg [L-1:0]         wa_addr, wb_addr;
    reg [DATA_BITS-1:0] wa_re, wa_im, wb_re, wb_im;

    always @(*) begin
        we_a = 1'b0; wa_addr = bf_top;      wa_re = bf_top_re; wa_im = bf_top_im;
        we_b = 1'b0; wb_addr = bf_bottom;   wb_re = bf_bot_re; wb_im = bf_bot_im;
        if (prod_valid) begin                 // S_MAC / S_DRAIN: a finished bin and its mirror
            we_a = prod_last; wa_addr = bit_reverse(prod_bin);  wa_re = v_re; wa_im = v_im;
            we_b = prod_last && mirror_bin;
            wb_addr = bit_reverse(-prod_bin); wb_re = v_re; wb_im = -v_im;
        end else begin
            case (state)
                S_FILL: begin
                    we_a = 1'b1; wa_addr = bit_reverse(idx); wa_re = fill_re; wa_im = {DATA_BITS{1'b0}};
                end
                S_BFLY: begin
                    we_a = 1'b1;
                    we_b = 1'b1;
                end
                default: ;
            endcase
        end
    end

    always @(posedge clk) begin
        if (we_a) begin
            buf_re[wa_addr] <= wa_re;
            buf_im[wa_addr] <= wa_im;
        end
        if (we_b) begin
            buf_re[wb_addr] <= wb_re;
            buf_im[wb_addr] <= wb_im;
        end
    end

    // Stored spectra fit XS_BITS (the forward bound); the buffer's upper bits are sign copies.
    wire signed [XS_BITS-1:0] store_re, store_im;
    circulant_round #(.IN_W(DATA_BITS), .OUT_W(XS_BITS), .SHIFT(0)) u_store_re (.v(top_re), .y(store_re));
    circulant_round #(.IN_W(DATA_BITS), .OUT_W(XS_BITS), .SHIFT(0)) u_store_im (.v(top_im), .y(store_im));

    always @(posedge clk) begin
        if (accept) x_mem[load_idx] <= in_data;
        if (state == S_STORE) xs_mem[s_addr] <= {store_im, store_re};
    end

    always @(posedge clk) begin
        if (prod_valid) begin
            mac_re <= sum_re;
            mac_im <= sum_im;
        end
    end

    // ---------------------------------------------------------------- sequencing
    wire stage_done = (idx == M_END);
    wire fft_done   = stage_done && (stage == ST_END);

    always @(posedge clk) begin
        if (rst) begin
            state    <= S_LOAD;
            inverse  <= 1'b0;
            load_idx <= 0;
            blk_j    <= 0;
            blk_i    <= 0;
            idx      <= 0;
            stage    <= 0;
            w_addr   <= 0;
            out_row  <= 0;
        end else begin
            case (state)
                S_LOAD: if (accept) begin
                    load_idx <= (load_idx == LI_END) ? 0 : load_idx + 1'b1;
                    if (load_idx == LI_END) state <= S_FILL;
                end
                S_FILL: begin
                    idx <= idx + 1'b1;                  // wraps to 0 after B - 1
                    if (idx == N_END) begin
                        state   <= S_BFLY;
                        inverse <= 1'b0;
                    end
                end
                S_BFLY: begin
                    idx <= stage_done ? 0 : idx + 1'b1;
                    if (stage_done) stage <= fft_done ? 0 : stage + 1'b1;
                    if (fft_done) state <= inverse ? S_OUT : S_STORE;
                end
                S_STORE: begin
                    idx <= (idx == K_END) ? 0 : idx + 1'b1;
                    if (idx == K_END) begin
                        blk_j <= (blk_j == J_END) ? 0 : blk_j + 1'b1;
                        state <= (blk_j == J_END) ? S_MAC : S_FILL;
                    end
                end
                S_MAC: begin
                    w_addr <= w_addr + 1'b1;
                    blk_j  <= mac_last ? 0 : blk_j + 1'b1;
                    if (mac_last) idx <= (idx == K_END) ? 0 : idx + 1'b1;
                    if (mac_last && idx == K_END) state <= S_DRAIN;
                end
                S_DRAIN: begin
                    state   <= S_BFLY;
                    inverse <= 1'b1;
                end
                S_OUT: if (advance) begin
                    idx     <= idx + 1'b1;
                    out_row <= (out_row == OR_END) ? 0 : out_row + 1'b1;
                    if (idx == N_END || out_row == OR_END) begin
                        idx   <= 0;
                        blk_i <= (blk_i == I_END) ? 0 : blk_i + 1'b1;
                        state <= (blk_i == I_END) ? S_LOAD : S_MAC;
                        if (blk_i == I_END) w_addr <= 0;
                    end
                end
                default: state <= S_LOAD;
            endcase
        end
    end

    // ---------------------------------------------------------------- ROM fault (sticky)
    // A used word that decodes as detected: the spectra pair being accumulated (prod_valid;
    // w_addr runs past the ROM between vectors, never with prod_valid), the twiddle of a
    // butterfly, the bias of an output.
    reg fault_seen;
    always @(posedge clk) begin
        if (rst) fault_seen <= 1'b0;
        else if ((prod_valid && w_detected) || (state == S_BFLY && !prod_valid && tw_detected)
                 || (state == S_OUT && b_detected))
            fault_seen <= 1'b1;
    end
    assign fault = fault_seen;

    // ---------------------------------------------------------------- output register
    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT)
    ) u_output (
        .clk(clk), .rst(rst), .load(state == S_OUT), .last(1'b1), .acc(acc), .free(advance),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );
endmodule


// circulant_round: y = rshift_round(v, SHIFT) of docs/fixed-point.md, resized to OUT_W bits:
//   SHIFT > 0: floor((v + 2**(SHIFT-1)) / 2**SHIFT)  (round half up);  SHIFT == 0: v;
//   SHIFT < 0: v * 2**-SHIFT. The caller guarantees the result fits OUT_W (the dropped high
//   bits, if any, are sign copies). Combinational. It lives in this file because it is
//   circulant_mac's private helper, hence the DECLFILENAME waiver.
/* verilator lint_off DECLFILENAME */
module circulant_round #(
    parameter IN_W  = 8,
    parameter OUT_W = 8,
    parameter SHIFT = 0
) (
    input  wire signed [IN_W-1:0]  v,
    output wire signed [OUT_W-1:0] y
);
    localparam POS   = (SHIFT > 0) ? SHIFT : 0;
    localparam NEG   = (SHIFT < 0) ? -SHIFT : 0;
    localparam WIDE  = ((IN_W > POS) ? IN_W : POS) + 1 + NEG;   // holds v + 2**(POS-1) and v << NEG
    wire signed [WIDE-1:0] v_wide = {{(WIDE - IN_W){v[IN_W-1]}}, v};
    wire signed [WIDE-1:0] shifted;

    generate
        if (SHIFT > 0) begin : g_round
            localparam signed [WIDE-1:0] HALF = {{(WIDE-1){1'b0}}, 1'b1} <<< (POS - 1);
            assign shifted = (v_wide + HALF) >>> POS;
        end else begin : g_left
            assign shifted = v_wide <<< NEG;
        end
        if (OUT_W > WIDE) begin : g_extend
            assign y = {{(OUT_W - WIDE){shifted[WIDE-1]}}, shifted};
        end else if (OUT_W == WIDE) begin : g_same
            assign y = shifted;
        end else begin : g_truncate
            assign y = shifted[OUT_W-1:0];
            wire unused_high = ^shifted[WIDE-1:OUT_W];
        end
    endgenerate
endmodule
/* verilator lint_on DECLFILENAME */
