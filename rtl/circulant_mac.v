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
// TW_FILE: the twiddles (rtl/circulant_butterfly.v); B_FILE: N_OUT biases of B_BITS bits
// (rtl/circulant_output.v). B is a power of two >= 2; B_BITS <= ACC_BITS.
//
// Protected ROMs (PROTECT; kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): with
// PROTECT = 1 (even parity) or 2 (SECDED) each word of the three ROMs is stored as its
// codeword, the data bits low and the check bits above them (rtl/rom_port.v, which decodes
// each read in the same cycle: the timing below holds for every PROTECT;
// kernels/circulant_rom.py write_circulant_roms). `fault` is sticky, cleared by rst: it rises
// at the edge after a used word decodes as detected (parity: an odd number of flips; SECDED:
// two): a spectra word in the cycle its pair is accumulated, a twiddle in a butterfly cycle, a
// bias word in an output cycle. SECDED corrects a single flip silently. With PROTECT = 0 fault
// stays low. PROTECT_LANES (with PROTECT != 0): 0 one code per ROM word; 1 one code per lane:
// spectra words are 2*SM lanes (re0, im0, re1, ...: SPEC_BITS each), twiddle words 2 (cos,
// sin); bias words stay one lane. Same timing.
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
    parameter PROTECT    = 0,      // ROM words: 0 plain, 1 even parity, 2 SECDED (rtl/rom_port.v)
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
    localparam QS      = (Q + SM - 1) / SM;            // MAC cycles per bin
    localparam TW_BITS = TW_FRAC + 2;
    localparam MB      = (TW_BITS > SPEC_BITS) ? TW_BITS : SPEC_BITS;   // multiplier B operand
    localparam CW      = DATA_BITS + MB + 1;           // a complex product's real/imag part
    localparam XW      = 2 * XS_BITS;                  // a stored input-spectrum word {im, re}
    // ROM words: data bits, then check bits (their width: rtl/rom_port.v).
    localparam WD      = 2 * SPEC_BITS * SM;           // SM spectra {im, re} per word
    localparam W_LANES = (PROTECT_LANES != 0) ? 2 * SM : 1;  // codes per spectra word

    localparam XA_BITS  = (Q * B > 1) ? $clog2(Q * B) : 1;
    localparam SA_BITS  = (Q * H > 1) ? $clog2(Q * H) : 1;
    localparam WA_BITS  = (P * H * QS > 1) ? $clog2(P * H * QS) : 1;
    localparam J_BITS   = (Q > 1) ? $clog2(Q) : 1;
    localparam ST_BITS  = (L > 1) ? $clog2(L) : 1;

    // Counter end values, sliced to the counters' widths.
    localparam [31:0] LI_END_32 = N_IN - 1;
    localparam [31:0] JS_END_32 = QS - 1;
    localparam [31:0] K_END_32  = HB;
    localparam [31:0] N_IN_32   = N_IN;
    localparam [31:0] Q_32      = Q;
    localparam [XA_BITS-1:0] LI_END = LI_END_32[XA_BITS-1:0];
    localparam [J_BITS-1:0]  JS_END = JS_END_32[J_BITS-1:0];
    localparam [L-1:0]       K_END  = K_END_32[L-1:0];     // bin B/2

    // ---------------------------------------------------------------- memories
    // The ROMs are rtl/rom_port.v instances: spectra below, twiddles in rtl/circulant_butterfly.v,
    // bias in rtl/circulant_output.v.
    reg [IN_BITS-1:0]        x_mem  [0:Q*B-1];      // input vector (past N_IN: never read)
    reg [XW-1:0]             xs_mem [0:Q*H-1];      // input spectra, word k*Q + j = {im, re}
    reg signed [DATA_BITS-1:0] buf_re [0:B-1];      // the in-place FFT buffer
    reg signed [DATA_BITS-1:0] buf_im [0:B-1];

    function [L-1:0] bit_reverse(input [L-1:0] v);
        integer bit_idx;
        begin
            for (bit_idx = 0; bit_idx < L; bit_idx = bit_idx + 1)
                bit_reverse[bit_idx] = v[L - 1 - bit_idx];
        end
    endfunction

    // ---------------------------------------------------------------- control (rtl/circulant_control.v)
    reg               x_full;      // x_mem holds a vector the forward FFTs have not read yet
    reg [XA_BITS-1:0] load_idx;    // x_mem write address
    wire              filling, butterflying, storing, macing, handing, last_fill;
    wire              inverse;     // butterflying: 0 forward FFT of an input block, 1 inverse FFT
    wire [J_BITS-1:0] blk_j;       // input block (fill, store) or MAC lane group (MAC)
    wire [L-1:0]      idx;         // fill / butterfly / store cycle, bin k (MAC)
    wire [ST_BITS-1:0] stage;      // butterfly stage - 1
    wire [WA_BITS-1:0] w_addr;     // (i*H + k)*QS + j/SM, counts through the MACs
    wire              out_busy;    // the output buffer holds outputs still to emit
    wire              hand;        // the result moves to the output buffer

    // The input buffer takes the next vector as soon as the forward FFTs have read the last
    // one (its last fill), while the spectral MACs, inverse FFTs and outputs go on.
    assign in_ready = !x_full;
    wire accept = in_valid && in_ready;
    wire last_load = accept && (load_idx == LI_END);
    wire vec_ready = x_full || last_load;       // a whole vector is (or becomes) loaded

    circulant_control #(.N_IN(N_IN), .N_OUT(N_OUT), .B(B), .BF(BF), .SM(SM)) u_control (
        .clk(clk), .rst(rst), .vec_ready(vec_ready), .hand(hand),
        .filling(filling), .butterflying(butterflying), .storing(storing), .macing(macing),
        .handing(handing), .last_fill(last_fill), .inverse(inverse), .blk_j(blk_j), .idx(idx),
        .stage(stage), .w_addr(w_addr)
    );

    wire [31:0] blk_j_32   = {{(32-J_BITS){1'b0}}, blk_j};
    wire [31:0] idx_32     = {{(32-L){1'b0}}, idx};

    // ---------------------------------------------------------------- lanes
    // Butterfly lane u (< BF) works on butterfly m = idx*BF + u of the stage (rtl/circulant_butterfly.v;
    // and fills input n = idx*BF + u, stores bin k = idx*BF + u); multiplier lane u (< U) is shared
    // by butterfly lane u and spectral lane u (< SM, rtl/circulant_spectral.v: input block
    // j = blk_j*SM + u of bin k = idx).
    wire [BF*L-1:0]          bf_top_a, bf_bot_a, fill_a;
    wire [BF*DATA_BITS-1:0]  nt_re, nt_im, nb_re, nb_im, fill_v;
    wire [BF*DATA_BITS-1:0]  top_re_f, top_im_f, bot_re_f, bot_im_f;
    wire [BF*SA_BITS-1:0]    st_a;
    wire [BF*XW-1:0]         st_v;
    wire [BF-1:0]            st_ok, tw_det;
    wire [SM*XW-1:0]         xs_word;
    wire [U*DATA_BITS-1:0]   sm_ar_f, sm_ai_f;
    wire [U*MB-1:0]          sm_br_f, sm_bi_f;
    wire [U*CW-1:0]          prod_re_f, prod_im_f;
    wire [WD-1:0]            w_word;
    reg                      prod_valid;   // w_word, xs_word hold a pair group to accumulate
    reg                      prod_first;   // ... of lane group 0
    reg                      prod_last;    // ... of the last lane group (bin k complete)
    reg  [L-1:0]             prod_bin;     // ... of bin k

    circulant_butterfly #(
        .B(B), .BF(BF), .U(U), .DATA_BITS(DATA_BITS), .TW_FRAC(TW_FRAC), .SPEC_BITS(SPEC_BITS),
        .PROTECT(PROTECT), .PROTECT_LANES(PROTECT_LANES), .TW_FILE(TW_FILE)
    ) u_butterfly (
        .stage(stage), .idx(idx), .inverse(inverse), .top_a(bf_top_a), .bot_a(bf_bot_a),
        .top_re(top_re_f), .top_im(top_im_f), .bot_re(bot_re_f), .bot_im(bot_im_f),
        .new_top_re(nt_re), .new_top_im(nt_im), .new_bot_re(nb_re), .new_bot_im(nb_im),
        .tw_detected(tw_det), .mac_phase(prod_valid),
        .sm_ar(sm_ar_f), .sm_ai(sm_ai_f), .sm_br(sm_br_f), .sm_bi(sm_bi_f),
        .prod_re(prod_re_f), .prod_im(prod_im_f)
    );

    genvar u;
    generate
        for (u = 0; u < BF; u = u + 1) begin : g_bf
            localparam [31:0] U_32 = u;
            wire [31:0] m_32 = idx_32 * BF + U_32;
            wire [L-1:0] m = m_32[L-1:0];
            wire [L-1:0] top = bf_top_a[u*L +: L];
            wire [L-1:0] bot = bf_bot_a[u*L +: L];
            assign top_re_f[u*DATA_BITS +: DATA_BITS] = buf_re[top];
            assign top_im_f[u*DATA_BITS +: DATA_BITS] = buf_im[top];
            assign bot_re_f[u*DATA_BITS +: DATA_BITS] = buf_re[bot];
            assign bot_im_f[u*DATA_BITS +: DATA_BITS] = buf_im[bot];

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
            wire unused_lane_bits = ^{x_addr_32, s_addr_32, m_32};
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

    endgenerate

    always @(posedge clk) begin
        prod_first <= (blk_j == 0);
        prod_last  <= (blk_j == JS_END);
        prod_bin   <= idx;
    end

    always @(posedge clk) begin
        if (rst) prod_valid <= 1'b0;
        else     prod_valid <= macing;
    end

    wire w_detected, unused_w_corrected;
    rom_port #(
        .DEPTH(P * H * QS), .DATA_BITS(WD), .PROTECT(PROTECT), .LANES(W_LANES), .FILE(W_FILE)
    ) u_w_rom (
        .clk(clk), .en(1'b1), .addr(w_addr),
        .data(w_word), .corrected(unused_w_corrected), .detected(w_detected)
    );

    // ---------------------------------------------------------------- spectral MAC
    wire signed [DATA_BITS-1:0] v_re, v_im;     // bin prod_bin once prod_last
    circulant_spectral #(
        .SM(SM), .U(U), .XS_BITS(XS_BITS), .SPEC_BITS(SPEC_BITS), .DATA_BITS(DATA_BITS),
        .MAC_BITS(MAC_BITS), .SPEC_SHIFT(SPEC_SHIFT), .MB(MB)
    ) u_spectral (
        .clk(clk), .valid(prod_valid), .first(prod_first), .xs_word(xs_word), .w_word(w_word),
        .sm_ar(sm_ar_f), .sm_ai(sm_ai_f), .sm_br(sm_br_f), .sm_bi(sm_bi_f),
        .prod_re(prod_re_f), .prod_im(prod_im_f), .v_re(v_re), .v_im(v_im)
    );
    wire mirror_bin = (prod_bin != 0) && (prod_bin != K_END);   // bins 1 .. B/2-1: mirror B-k

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
        end else if (filling) begin
            for (wu = 0; wu < BF; wu = wu + 1) begin
                buf_re[fill_a[wu*L +: L]] <= fill_v[wu*DATA_BITS +: DATA_BITS];
                buf_im[fill_a[wu*L +: L]] <= {DATA_BITS{1'b0}};
            end
        end else if (butterflying) begin
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
            else if (last_fill) x_full <= 1'b0;
        end
    end

    integer xu;
    always @(posedge clk) begin
        if (storing)
            for (xu = 0; xu < BF; xu = xu + 1)
                if (st_ok[xu]) xs_mem[st_a[xu*SA_BITS +: SA_BITS]] <= st_v[xu*XW +: XW];
    end

    // ---------------------------------------------------------------- output buffer, register
    // rtl/circulant_output.v: S_HAND hands the inverse FFT's result (B values) over once the
    // block before has left the output buffer; the outputs leave from there, bias added.
    wire [B*DATA_BITS-1:0] fft_re;
    wire                   b_detected;
    genvar on;
    generate
        for (on = 0; on < B; on = on + 1) begin : g_result
            assign fft_re[on*DATA_BITS +: DATA_BITS] = buf_re[on];
        end
    endgenerate

    circulant_output #(
        .N_OUT(N_OUT), .B(B), .DATA_BITS(DATA_BITS), .IFFT_GUARD(IFFT_GUARD), .B_BITS(B_BITS),
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT),
        .PROTECT(PROTECT), .B_FILE(B_FILE)
    ) u_output (
        .clk(clk), .rst(rst), .hand_req(handing), .fft_re(fft_re), .hand(hand),
        .busy(out_busy), .b_detected(b_detected),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );

    // ---------------------------------------------------------------- ROM fault (sticky)
    // A used word that decodes as detected: the spectra group being accumulated (prod_valid;
    // w_addr runs past the ROM between vectors, never with prod_valid), the twiddle of any
    // butterfly lane, the bias of an output.
    reg fault_seen;
    always @(posedge clk) begin
        if (rst) fault_seen <= 1'b0;
        else if ((prod_valid && w_detected) || (butterflying && !prod_valid && (|tw_det))
                 || (out_busy && b_detected))
            fault_seen <= 1'b1;
    end
    assign fault = fault_seen;
endmodule
