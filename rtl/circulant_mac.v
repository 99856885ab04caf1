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
// Datapath: U = max(BF, SM) complex multipliers of 3 real multipliers each (Gauss's product,
// exact), shared: BF butterfly units (BF a power of two dividing B/2) work on BF butterflies of
// one stage per cycle (and fill BF inputs, store BF bins per cycle); SM spectral lanes (1 .. Q)
// multiply SM input blocks of one bin per MAC cycle and add them to the accumulator. BF = SM = 1
// is the one-complex-multiplier engine.
//   1. forward FFT of each input block j (x_j * 2**FFT_GUARD, bit-reversed, radix-2 DIT,
//      every stage halved with round half up); bins 0..B/2 kept in the spectrum memory;
//   2. for each output block i and bin k: sum_j W[i,j,k] * X[j,k] (exact, MAC_BITS), rounded
//      by SPEC_SHIFT bits; bins B/2+1..B-1 are the conjugate mirror (real output);
//   3. inverse FFT (same butterfly, conjugate twiddles), real part rounded by IFFT_GUARD bits,
//      plus bias, requantize.
// All widths come from kernels.circulant_mac.plan_circulant (worst-case bounds) via
// kernels.circulant_rom.circulant_rtl_parameters; with them no input in range overflows.
//
// ROM images (layout in kernels/circulant_rom.py): W_FILE holds P*H*QS words of SM*2*SPEC_BITS
// bits (H = B/2 + 1, QS = ceil(Q/SM)); lane u (bits [u*2*SPEC_BITS +: 2*SPEC_BITS]) of word
// (i*H + k)*QS + g = {im, re} of block (i, j = g*SM + u)'s weight spectrum bin k (0 past Q).
// TW_FILE holds B/2 words of 2*(TW_FRAC+2) bits, word k = {sin_q[k], cos_q[k]}. B_FILE holds
// N_OUT words of B_BITS bits. B is a power of two >= 2; B_BITS <= ACC_BITS.
//
// Protected ROMs (PROTECT; kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): with
// PROTECT = 1 (even parity) or 2 (SECDED) each word of the three ROMs is stored as its
// codeword, the data bits low and the check bits above them (kernels.rom.write_mem(...,
// protection=...); kernels/circulant_rom.py write_circulant_roms): W_FILE words are
// WD + C(WD) bits (WD = SM*2*SPEC_BITS), TW_FILE words 2*(TW_FRAC+2) + C(2*(TW_FRAC+2)), B_FILE
// words B_BITS + C(B_BITS), with C(D) = 0 (PROTECT 0), 1 (PROTECT 1) or
// $clog2(D + 1 + $clog2(D + 1)) + 1 (PROTECT 2). Each read (the registered spectra read, the
// BF twiddle and the bias reads) is decoded by rtl/rom_check.v in the same cycle (no added cycle: the
// timing below holds for every PROTECT). `fault` is sticky, cleared by rst: it rises at the
// edge after a used word decodes as detected (parity: an odd number of flips; SECDED: two): a
// spectra word in the cycle its pair is accumulated, a twiddle in a butterfly cycle, a bias
// word in an output cycle. SECDED corrects a single flip silently. With PROTECT = 0 fault
// stays low.
// PROTECT_LANES (with PROTECT != 0): 0 one code per ROM word (above); 1 one code per lane:
// W_FILE words are 2*SM lanes (re0, im0, re1, ...: SPEC_BITS each), stored WD + 2*SM*C(SPEC_BITS)
// bits (lane l's check bits at [WD + l*C +: C]); TW_FILE words 2 lanes (cos, sin:
// TW_FRAC+2 bits each), 2*(TW_FRAC+2) + 2*C(TW_FRAC+2) bits; B_FILE stays one lane
// (kernels.rom.write_mem(..., protection, lanes=2); kernels/circulant_rom.py
// write_circulant_roms). Same timing.
//
// Timing (clock edges at which the in/out handshakes complete), with L = log2(B):
//   load  N_IN cycles; a vector's compute starts at the edge of its last input (or later, below);
//   per input block:  FI = B/BF (fill) + BC = L*B/(2*BF) (butterflies) + ST = ceil(H/BF) (store
//                     spectrum) cycles;
//   per output block: PO = QS*H + 1 (spectral MACs, registered ROM reads) + BC (butterflies),
//                     then one S_HAND cycle that copies the result into the output buffer once
//                     the block before has left it (at the edge that loads its last output into
//                     the output register, at the latest); the outputs leave from there, one per
//                     `advance`, while the next block computes.
//   So output block i is handed over at HAND_i = START + FWD + PO + 1 + i*STEP, FWD =
//   Q*(FI + BC + ST), STEP = max(PO + 1, B), and output (i, n) completes at HAND_i + n + 2. With
//   in_valid and out_ready held high, an idle engine's output o = i*B + n completes
//     N_IN + FWD + PO + i*STEP + n + 2
//   cycles after the first input (the last one: the latency). One input buffer, freed at the
//   vector's last fill, RELEASE = (Q-1)*(FI + BC + ST) + FI edges after its START (in_ready =
//   the buffer is free), so the next vector loads while this one computes; its START is the edge
//   of its last input or, if later, this vector's last hand-over, and its first hand-over waits
//   (if it must) until this vector's LAST = N_OUT - (P-1)*B last outputs have left. Inputs one
//   per cycle, out_ready high: STARTs are INTERVAL = max(RESTART, RELEASE + N_IN) apart,
//   RESTART = max(FWD + PO + 1, LAST) + (P-1)*STEP. While out_valid && !out_ready the output
//   buffer waits at the held output (and the compute at the next hand-over), so back-pressure
//   only adds cycles (kernels.circulant_mac.CirculantSchedule; compiler/hw/circulant.py's
//   CirculantModel replays this control edge by edge). Multipliers: 3*max(BF, SM).
module circulant_mac #(
    parameter N_IN       = 8,
    parameter N_OUT      = 8,
    parameter B          = 4,
    parameter BF         = 1,      // butterfly units: a power of two dividing B/2
    parameter SM         = 1,      // spectral lanes (input blocks per MAC cycle): 1 .. Q
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
    localparam U       = (BF > SM) ? BF : SM;          // complex multipliers (shared)
    localparam CPS     = HB / BF;                      // cycles per butterfly stage
    localparam FILL_N  = B / BF;                       // fill cycles per input block
    localparam STORE_N = (H + BF - 1) / BF;            // store cycles per input block
    localparam QS      = (Q + SM - 1) / SM;            // MAC cycles per bin
    localparam TW_BITS = TW_FRAC + 2;
    localparam MB      = (TW_BITS > SPEC_BITS) ? TW_BITS : SPEC_BITS;   // multiplier B operand
    localparam MB3     = (TW_BITS > SPEC_BITS + 1) ? TW_BITS : SPEC_BITS + 1;  // b-side sums
    localparam CW      = DATA_BITS + MB + 1;           // a complex product's real/imag part
    localparam SUM_W   = DATA_BITS + 2;                // a +- t before halving
    localparam XW      = 2 * XS_BITS;                  // a stored input-spectrum word {im, re}
    // Stored ROM word widths: data + check bits (rtl/rom_check.v, kernels.rom_protect.check_bits).
    localparam WD      = 2 * SPEC_BITS * SM;           // SM spectra {im, re} per word
    localparam TD      = 2 * TW_BITS;
    localparam W_LANES = (PROTECT_LANES != 0) ? 2 * SM : 1;  // codes per spectra word
    localparam T_LANES = (PROTECT_LANES != 0) ? 2 : 1;       // codes per twiddle word
    localparam WL      = WD / W_LANES;
    localparam TL      = TD / T_LANES;
    localparam W_CODE  = WD + W_LANES * ((PROTECT == 2) ? $clog2(WL + 1 + $clog2(WL + 1)) + 1 : (PROTECT == 1) ? 1 : 0);
    localparam TW_CODE = TD + T_LANES * ((PROTECT == 2) ? $clog2(TL + 1 + $clog2(TL + 1)) + 1 : (PROTECT == 1) ? 1 : 0);
    localparam B_CODE  = B_BITS + ((PROTECT == 2) ? $clog2(B_BITS + 1 + $clog2(B_BITS + 1)) + 1 :
                                   (PROTECT == 1) ? 1 : 0);

    localparam XA_BITS  = (Q * B > 1) ? $clog2(Q * B) : 1;
    localparam SA_BITS  = (Q * H > 1) ? $clog2(Q * H) : 1;
    localparam WA_BITS  = (P * H * QS > 1) ? $clog2(P * H * QS) : 1;
    localparam TA_BITS  = (HB > 1) ? $clog2(HB) : 1;
    localparam OR_BITS  = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam J_BITS   = (Q > 1) ? $clog2(Q) : 1;
    localparam I_BITS   = (P > 1) ? $clog2(P) : 1;
    localparam ST_BITS  = (L > 1) ? $clog2(L) : 1;

    // Counter end values, sliced to the counters' widths.
    localparam [31:0] LI_END_32 = N_IN - 1;
    localparam [31:0] OR_END_32 = N_OUT - 1;
    localparam [31:0] J_END_32  = Q - 1;
    localparam [31:0] JS_END_32 = QS - 1;
    localparam [31:0] I_END_32  = P - 1;
    localparam [31:0] ST_END_32 = L - 1;
    localparam [31:0] N_END_32  = B - 1;
    localparam [31:0] F_END_32  = FILL_N - 1;
    localparam [31:0] M_END_32  = CPS - 1;
    localparam [31:0] S_END_32  = STORE_N - 1;
    localparam [31:0] K_END_32  = HB;
    localparam [31:0] N_IN_32   = N_IN;
    localparam [31:0] Q_32      = Q;
    localparam [XA_BITS-1:0] LI_END = LI_END_32[XA_BITS-1:0];
    localparam [OR_BITS-1:0] OR_END = OR_END_32[OR_BITS-1:0];
    localparam [J_BITS-1:0]  J_END  = J_END_32[J_BITS-1:0];
    localparam [J_BITS-1:0]  JS_END = JS_END_32[J_BITS-1:0];
    localparam [I_BITS-1:0]  I_END  = I_END_32[I_BITS-1:0];
    localparam [ST_BITS-1:0] ST_END = ST_END_32[ST_BITS-1:0];
    localparam [L-1:0]       N_END  = N_END_32[L-1:0];
    localparam [L-1:0]       F_END  = F_END_32[L-1:0];
    localparam [L-1:0]       M_END  = M_END_32[L-1:0];
    localparam [L-1:0]       S_END  = S_END_32[L-1:0];
    localparam [L-1:0]       K_END  = K_END_32[L-1:0];     // bin B/2

    localparam [2:0] S_IDLE = 3'd0, S_FILL = 3'd1, S_BFLY = 3'd2, S_STORE = 3'd3,
                     S_MAC  = 3'd4, S_DRAIN = 3'd5, S_HAND = 3'd6;

    // ---------------------------------------------------------------- memories
    reg [W_CODE-1:0]         w_rom  [0:P*H*QS-1];   // codewords (PROTECT = 0: the words)
    reg [TW_CODE-1:0]        tw_rom [0:HB-1];
    reg [B_CODE-1:0]         b_rom  [0:N_OUT-1];
    reg [IN_BITS-1:0]        x_mem  [0:Q*B-1];      // input vector (past N_IN: never read)
    reg [XW-1:0]             xs_mem [0:Q*H-1];      // input spectra, word k*Q + j = {im, re}
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
    reg               x_full;      // x_mem holds a vector the forward FFTs have not read yet
    reg               inverse;     // S_BFLY: 0 forward FFT of an input block, 1 inverse FFT
    reg [XA_BITS-1:0] load_idx;    // x_mem write address
    reg [J_BITS-1:0]  blk_j;       // input block (S_FILL, S_STORE) or MAC lane group (S_MAC)
    reg [I_BITS-1:0]  blk_i;       // output block (S_MAC, S_BFLY inverse, S_HAND)
    reg [L-1:0]       idx;         // fill / butterfly / store cycle, bin k (S_MAC)
    reg [ST_BITS-1:0] stage;       // butterfly stage - 1
    reg [WA_BITS-1:0] w_addr;      // (i*H + k)*QS + j/SM, counts through S_MAC
    reg [OR_BITS-1:0] out_row;     // the output being emitted: o = i*B + n
    reg [L-1:0]       out_n;       // ... its n
    reg               out_busy;    // the output buffer holds outputs still to emit
    reg signed [DATA_BITS-1:0] obuf [0:B-1];   // an inverse FFT's result, emitted from here

    wire advance;                               // the output register can take a value

    // The input buffer takes the next vector as soon as the forward FFTs have read the last
    // one (its last fill), while the spectral MACs, inverse FFTs and outputs go on.
    assign in_ready = !x_full;
    wire accept = in_valid && in_ready;
    wire last_load = accept && (load_idx == LI_END);
    wire vec_ready = x_full || last_load;       // a whole vector is (or becomes) loaded

    // ---------------------------------------------------------------- addresses
    localparam [L-1:0] ONE_L = 1;
    wire [L-1:0] half      = ONE_L << stage;                 // 2**(s-1)
    wire [L-1:0] low_mask  = half - 1'b1;
    wire [31:0] blk_j_32   = {{(32-J_BITS){1'b0}}, blk_j};
    wire [31:0] idx_32     = {{(32-L){1'b0}}, idx};

    // ---------------------------------------------------------------- lanes
    // Butterfly lane u (< BF) works on butterfly m = idx*BF + u of the stage (and fills input
    // n = idx*BF + u, stores bin k = idx*BF + u); multiplier lane u (< U) is shared by
    // butterfly lane u and spectral lane u (< SM: input block j = blk_j*SM + u of bin k = idx).
    wire [BF*L-1:0]          bf_top_a, bf_bot_a, fill_a;
    wire [BF*DATA_BITS-1:0]  nt_re, nt_im, nb_re, nb_im, fill_v;
    wire [BF*SA_BITS-1:0]    st_a;
    wire [BF*XW-1:0]         st_v;
    wire [BF-1:0]            st_ok, tw_det;
    wire [BF*DATA_BITS-1:0]  bot_re_f, bot_im_f;
    wire [BF*MB-1:0]         tw_re_f, tw_im_f;
    wire [SM*XW-1:0]         xs_word;
    wire [U*CW-1:0]          prod_re_f, prod_im_f;
    wire [SM*MAC_BITS-1:0]   term_re_f, term_im_f;
    reg  [W_CODE-1:0]        w_code;
    wire [WD-1:0]            w_word;
    reg                      prod_valid;   // w_code, xs_word hold a pair group to accumulate
    reg                      prod_first;   // ... of lane group 0
    reg                      prod_last;    // ... of the last lane group (bin k complete)
    reg  [L-1:0]             prod_bin;     // ... of bin k
    wire mac_phase = prod_valid;

    genvar u;
    generate
        for (u = 0; u < BF; u = u + 1) begin : g_bf
            localparam [31:0] U_32 = u;
            wire [31:0] m_32 = idx_32 * BF + U_32;
            wire [L-1:0] m = m_32[L-1:0];
            wire [L-1:0] top = ((m & ~low_mask) << 1) | (m & low_mask);
            wire [L-1:0] bot = top | half;
            wire [L-1:0] tw_full = (m & low_mask) << (ST_END - stage);  // j * B / 2**s
            wire [TW_CODE-1:0] tw_code = tw_rom[tw_full[TA_BITS-1:0]];
            wire [TD-1:0] tw_word;
            wire unused_tw_corrected;
            rom_check #(.DATA_BITS(TD), .PROTECT(PROTECT), .LANES(T_LANES)) u_tw_check (
                .code(tw_code), .data(tw_word), .corrected(unused_tw_corrected), .detected(tw_det[u])
            );
            wire signed [TW_BITS-1:0] tw_cos = tw_word[TW_BITS-1:0];
            wire signed [TW_BITS-1:0] tw_sin = tw_word[2*TW_BITS-1:TW_BITS];
            wire signed [TW_BITS-1:0] tw_im  = inverse ? tw_sin : -tw_sin;   // w = cos -+ i sin
            circulant_round #(.IN_W(TW_BITS), .OUT_W(MB), .SHIFT(0)) u_tw_re (.v(tw_cos), .y(tw_re_f[u*MB +: MB]));
            circulant_round #(.IN_W(TW_BITS), .OUT_W(MB), .SHIFT(0)) u_tw_im (.v(tw_im), .y(tw_im_f[u*MB +: MB]));
            assign bot_re_f[u*DATA_BITS +: DATA_BITS] = buf_re[bot];
            assign bot_im_f[u*DATA_BITS +: DATA_BITS] = buf_im[bot];
            assign bf_top_a[u*L +: L] = top;
            assign bf_bot_a[u*L +: L] = bot;

            // t = round(w * c / 2**TW_FRAC); top' = round((a + t) / 2), bottom' = round((a - t) / 2).
            wire signed [DATA_BITS-1:0] top_re = buf_re[top];
            wire signed [DATA_BITS-1:0] top_im = buf_im[top];
            wire signed [SUM_W-1:0] t_re, t_im;
            circulant_round #(.IN_W(CW), .OUT_W(SUM_W), .SHIFT(TW_FRAC)) u_t_re (.v(prod_re_f[u*CW +: CW]), .y(t_re));
            circulant_round #(.IN_W(CW), .OUT_W(SUM_W), .SHIFT(TW_FRAC)) u_t_im (.v(prod_im_f[u*CW +: CW]), .y(t_im));
            wire signed [SUM_W-1:0] a_re = {{2{top_re[DATA_BITS-1]}}, top_re};
            wire signed [SUM_W-1:0] a_im = {{2{top_im[DATA_BITS-1]}}, top_im};
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_top_re (.v(a_re + t_re), .y(nt_re[u*DATA_BITS +: DATA_BITS]));
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_top_im (.v(a_im + t_im), .y(nt_im[u*DATA_BITS +: DATA_BITS]));
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_bot_re (.v(a_re - t_re), .y(nb_re[u*DATA_BITS +: DATA_BITS]));
            circulant_round #(.IN_W(SUM_W), .OUT_W(DATA_BITS), .SHIFT(1)) u_bot_im (.v(a_im - t_im), .y(nb_im[u*DATA_BITS +: DATA_BITS]));

            // fill: input n = idx*BF + u of block j (zero past N_IN) at bit-reversed address
            wire [31:0] x_addr_32 = blk_j_32 * B + m_32;
            wire x_inside = x_addr_32 < N_IN_32;
            wire [IN_BITS-1:0] x_word = x_mem[x_addr_32[XA_BITS-1:0]];
            circulant_round #(.IN_W(IN_BITS), .OUT_W(DATA_BITS), .SHIFT(-FFT_GUARD)) u_fill (
                .v(x_inside ? x_word : {IN_BITS{1'b0}}), .y(fill_v[u*DATA_BITS +: DATA_BITS]));
            assign fill_a[u*L +: L] = bit_reverse(m);

            // store: bin k = idx*BF + u (<= B/2) of block j; the buffer's upper bits are sign
            // copies (stored spectra fit XS_BITS, the forward bound)
            wire [31:0] s_addr_32 = m_32 * Q + blk_j_32;
            assign st_ok[u] = m_32 <= K_END_32;
            assign st_a[u*SA_BITS +: SA_BITS] = s_addr_32[SA_BITS-1:0];
            wire signed [DATA_BITS-1:0] k_re = buf_re[m];
            wire signed [DATA_BITS-1:0] k_im = buf_im[m];
            circulant_round #(.IN_W(DATA_BITS), .OUT_W(XS_BITS), .SHIFT(0)) u_store_re (.v(k_re), .y(st_v[u*XW +: XS_BITS]));
            circulant_round #(.IN_W(DATA_BITS), .OUT_W(XS_BITS), .SHIFT(0)) u_store_im (.v(k_im), .y(st_v[u*XW + XS_BITS +: XS_BITS]));
            wire unused_lane_bits = ^{tw_full, x_addr_32, s_addr_32, m_32};
        end

        // Spectral lanes: the spectra (the large memories) are read through registers,
        // block-RAM style: the group issued in one S_MAC cycle is multiplied and accumulated in
        // the next, tagged by the prod_* registers; S_DRAIN finishes the last group.
        for (u = 0; u < SM; u = u + 1) begin : g_sm
            localparam [31:0] U_32 = u;
            wire [31:0] j_32 = blk_j_32 * SM + U_32;
            wire [31:0] a_32 = idx_32 * Q_32 + j_32;
            wire ok = (j_32 < Q_32) && (idx_32 <= K_END_32);
            reg [XW-1:0] xs_lane;
            always @(posedge clk) xs_lane <= ok ? xs_mem[a_32[SA_BITS-1:0]] : {XW{1'b0}};
            assign xs_word[u*XW +: XW] = xs_lane;
            wire unused_sm_bits = ^{a_32};
        end

        // Shared complex multipliers: spectral operands while prod_valid, else butterfly ones.
        for (u = 0; u < U; u = u + 1) begin : g_mul
            wire signed [DATA_BITS-1:0] bf_ar, bf_ai, sm_ar, sm_ai;
            wire signed [MB-1:0] bf_br, bf_bi, sm_br, sm_bi;
            if (u < BF) begin : g_bf_op
                assign bf_ar = bot_re_f[u*DATA_BITS +: DATA_BITS];
                assign bf_ai = bot_im_f[u*DATA_BITS +: DATA_BITS];
                assign bf_br = tw_re_f[u*MB +: MB];
                assign bf_bi = tw_im_f[u*MB +: MB];
            end else begin : g_no_bf
                assign bf_ar = {DATA_BITS{1'b0}};
                assign bf_ai = {DATA_BITS{1'b0}};
                assign bf_br = {MB{1'b0}};
                assign bf_bi = {MB{1'b0}};
            end
            if (u < SM) begin : g_sm_op
                wire signed [XS_BITS-1:0]   xs_re = xs_word[u*XW +: XS_BITS];
                wire signed [XS_BITS-1:0]   xs_im = xs_word[u*XW + XS_BITS +: XS_BITS];
                wire signed [SPEC_BITS-1:0] w_re  = w_word[u*2*SPEC_BITS +: SPEC_BITS];
                wire signed [SPEC_BITS-1:0] w_im  = w_word[u*2*SPEC_BITS + SPEC_BITS +: SPEC_BITS];
                circulant_round #(.IN_W(XS_BITS), .OUT_W(DATA_BITS), .SHIFT(0)) u_xs_re (.v(xs_re), .y(sm_ar));
                circulant_round #(.IN_W(XS_BITS), .OUT_W(DATA_BITS), .SHIFT(0)) u_xs_im (.v(xs_im), .y(sm_ai));
                circulant_round #(.IN_W(SPEC_BITS), .OUT_W(MB), .SHIFT(0)) u_w_re (.v(w_re), .y(sm_br));
                circulant_round #(.IN_W(SPEC_BITS), .OUT_W(MB), .SHIFT(0)) u_w_im (.v(w_im), .y(sm_bi));
            end else begin : g_no_sm
                assign sm_ar = {DATA_BITS{1'b0}};
                assign sm_ai = {DATA_BITS{1'b0}};
                assign sm_br = {MB{1'b0}};
                assign sm_bi = {MB{1'b0}};
            end
            wire signed [DATA_BITS-1:0] mul_ar = mac_phase ? sm_ar : bf_ar;
            wire signed [DATA_BITS-1:0] mul_ai = mac_phase ? sm_ai : bf_ai;
            wire signed [MB-1:0]        mul_br = mac_phase ? sm_br : bf_br;
            wire signed [MB-1:0]        mul_bi = mac_phase ? sm_bi : bf_bi;
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
            assign prod_re_f[u*CW +: CW] = k1 - k3;
            assign prod_im_f[u*CW +: CW] = k1 + k2;
            if (u < SM) begin : g_term
                // Modulo 2**MAC_BITS: every partial sum fits MAC_BITS, so truncated terms are exact.
                circulant_round #(.IN_W(CW), .OUT_W(MAC_BITS), .SHIFT(0)) u_term_re (
                    .v(prod_re_f[u*CW +: CW]), .y(term_re_f[u*MAC_BITS +: MAC_BITS]));
                circulant_round #(.IN_W(CW), .OUT_W(MAC_BITS), .SHIFT(0)) u_term_im (
                    .v(prod_im_f[u*CW +: CW]), .y(term_im_f[u*MAC_BITS +: MAC_BITS]));
            end
        end
    endgenerate

    always @(posedge clk) begin
        w_code     <= w_rom[w_addr];
        prod_first <= (blk_j == 0);
        prod_last  <= (blk_j == JS_END);
        prod_bin   <= idx;
    end

    always @(posedge clk) begin
        if (rst) prod_valid <= 1'b0;
        else     prod_valid <= (state == S_MAC);
    end

    wire w_detected, unused_w_corrected;
    rom_check #(.DATA_BITS(WD), .PROTECT(PROTECT), .LANES(W_LANES)) u_w_check (
        .code(w_code), .data(w_word), .corrected(unused_w_corrected), .detected(w_detected)
    );

    // ---------------------------------------------------------------- spectral MAC
    reg signed [MAC_BITS-1:0] mac_re, mac_im, tsum_re, tsum_im;
    integer su;
    always @(*) begin
        tsum_re = {MAC_BITS{1'b0}};
        tsum_im = {MAC_BITS{1'b0}};
        for (su = 0; su < SM; su = su + 1) begin
            tsum_re = tsum_re + term_re_f[su*MAC_BITS +: MAC_BITS];
            tsum_im = tsum_im + term_im_f[su*MAC_BITS +: MAC_BITS];
        end
    end
    wire signed [MAC_BITS-1:0] sum_re = prod_first ? tsum_re : mac_re + tsum_re;
    wire signed [MAC_BITS-1:0] sum_im = prod_first ? tsum_im : mac_im + tsum_im;
    wire signed [DATA_BITS-1:0] v_re, v_im;
    circulant_round #(.IN_W(MAC_BITS), .OUT_W(DATA_BITS), .SHIFT(SPEC_SHIFT)) u_v_re (.v(sum_re), .y(v_re));
    circulant_round #(.IN_W(MAC_BITS), .OUT_W(DATA_BITS), .SHIFT(SPEC_SHIFT)) u_v_im (.v(sum_im), .y(v_im));
    wire mirror_bin = (prod_bin != 0) && (prod_bin != K_END);   // bins 1 .. B/2-1: mirror B-k

    // ---------------------------------------------------------------- output value
    wire signed [DATA_BITS-1:0] out_re = obuf[out_n];
    wire signed [ACC_BITS-1:0] conv;                  // round(Re v[n] / 2**IFFT_GUARD)
    circulant_round #(.IN_W(DATA_BITS), .OUT_W(ACC_BITS), .SHIFT(IFFT_GUARD)) u_conv (.v(out_re), .y(conv));
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
    // A finished bin and its mirror (S_MAC / S_DRAIN), BF fills, or BF butterflies (both outputs).
    integer wu;
    always @(posedge clk) begin
        if (prod_valid) begin
            if (prod_last) begin
                buf_re[bit_reverse(prod_bin)] <= v_re;
                buf_im[bit_reverse(prod_bin)] <= v_im;
                if (mirror_bin) begin
                    buf_re[bit_reverse(-prod_bin)] <= v_re;
                    buf_im[bit_reverse(-prod_bin)] <= -v_im;
                end
            end
        end else if (state == S_FILL) begin
            for (wu = 0; wu < BF; wu = wu + 1) begin
                buf_re[fill_a[wu*L +: L]] <= fill_v[wu*DATA_BITS +: DATA_BITS];
                buf_im[fill_a[wu*L +: L]] <= {DATA_BITS{1'b0}};
            end
        end else if (state == S_BFLY) begin
            for (wu = 0; wu < BF; wu = wu + 1) begin
                buf_re[bf_top_a[wu*L +: L]] <= nt_re[wu*DATA_BITS +: DATA_BITS];
                buf_im[bf_top_a[wu*L +: L]] <= nt_im[wu*DATA_BITS +: DATA_BITS];
                buf_re[bf_bot_a[wu*L +: L]] <= nb_re[wu*DATA_BITS +: DATA_BITS];
                buf_im[bf_bot_a[wu*L +: L]] <= nb_im[wu*DATA_BITS +: DATA_BITS];
            end
        end
    end

    always @(posedge clk) begin
        if (accept) x_mem[load_idx] <= in_data;
    end

    always @(posedge clk) begin
        if (rst) begin
            load_idx <= 0;
            x_full   <= 1'b0;
        end else begin
            if (accept) load_idx <= (load_idx == LI_END) ? 0 : load_idx + 1'b1;
            if (last_load) x_full <= 1'b1;
            else if (state == S_FILL && idx == F_END && blk_j == J_END) x_full <= 1'b0;  // last fill
        end
    end

    integer xu;
    always @(posedge clk) begin
        if (state == S_STORE)
            for (xu = 0; xu < BF; xu = xu + 1)
                if (st_ok[xu]) xs_mem[st_a[xu*SA_BITS +: SA_BITS]] <= st_v[xu*XW +: XW];
    end

    always @(posedge clk) begin
        if (prod_valid) begin
            mac_re <= sum_re;
            mac_im <= sum_im;
        end
    end

    // ---------------------------------------------------------------- output buffer
    // S_HAND copies the inverse FFT's result (B values) into obuf once the outputs of the block
    // before have all been taken into the output register (at the edge of the last one at the
    // latest); they leave from there one per `advance` while the next block computes.
    wire out_end = (out_n == N_END) || (out_row == OR_END);    // the block's last output
    wire hand    = (state == S_HAND) && (!out_busy || (advance && out_end));
    integer on;
    always @(posedge clk) begin
        if (hand)
            for (on = 0; on < B; on = on + 1) obuf[on] <= buf_re[on];
    end

    always @(posedge clk) begin
        if (rst) begin
            out_busy <= 1'b0;
            out_n    <= 0;
            out_row  <= 0;
        end else begin
            if (out_busy && advance) begin
                out_n   <= out_n + 1'b1;
                out_row <= (out_row == OR_END) ? 0 : out_row + 1'b1;
                if (out_end) out_busy <= 1'b0;
            end
            if (hand) begin
                out_busy <= 1'b1;
                out_n    <= 0;
            end
        end
    end

    // ---------------------------------------------------------------- sequencing
    wire stage_done = (idx == M_END);
    wire fft_done   = stage_done && (stage == ST_END);
    wire mac_last   = (blk_j == JS_END);   // issuing the last lane group of bin k

    always @(posedge clk) begin
        if (rst) begin
            state    <= S_IDLE;
            inverse  <= 1'b0;
            blk_j    <= 0;
            blk_i    <= 0;
            idx      <= 0;
            stage    <= 0;
            w_addr   <= 0;
        end else begin
            case (state)
                S_IDLE: if (vec_ready) state <= S_FILL;
                S_FILL: begin
                    idx <= (idx == F_END) ? 0 : idx + 1'b1;
                    if (idx == F_END) begin
                        state   <= S_BFLY;
                        inverse <= 1'b0;
                    end
                end
                S_BFLY: begin
                    idx <= stage_done ? 0 : idx + 1'b1;
                    if (stage_done) stage <= fft_done ? 0 : stage + 1'b1;
                    if (fft_done) state <= inverse ? S_HAND : S_STORE;
                end
                S_STORE: begin
                    idx <= (idx == S_END) ? 0 : idx + 1'b1;
                    if (idx == S_END) begin
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
                S_HAND: if (hand) begin                 // the result moves to the output buffer
                    blk_i <= (blk_i == I_END) ? 0 : blk_i + 1'b1;
                    state <= (blk_i == I_END) ? (vec_ready ? S_FILL : S_IDLE) : S_MAC;
                    if (blk_i == I_END) w_addr <= 0;
                end
                default: state <= S_IDLE;
            endcase
        end
    end

    // ---------------------------------------------------------------- ROM fault (sticky)
    // A used word that decodes as detected: the spectra group being accumulated (prod_valid;
    // w_addr runs past the ROM between vectors, never with prod_valid), the twiddle of any
    // butterfly lane, the bias of an output.
    reg fault_seen;
    always @(posedge clk) begin
        if (rst) fault_seen <= 1'b0;
        else if ((prod_valid && w_detected) || (state == S_BFLY && !prod_valid && (|tw_det))
                 || (out_busy && b_detected))
            fault_seen <= 1'b1;
    end
    assign fault = fault_seen;

    // ---------------------------------------------------------------- output register
    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT)
    ) u_output (
        .clk(clk), .rst(rst), .load(out_busy), .last(1'b1), .acc(acc), .free(advance),
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
