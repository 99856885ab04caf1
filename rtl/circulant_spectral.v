// circulant_spectral: the spectral MAC of rtl/circulant_mac.v: SM lanes, each one input block's
// spectrum bin times its weight spectrum bin per MAC cycle, on the engine's shared complex
// multipliers (rtl/circulant_butterfly.v), summed into one accumulator per bin. Golden model:
// kernels.circulant_mac.circulant_mac, step 2 (docs/fixed-point.md "Block-circulant layers (FFT)"):
//   acc = sum_j W[i,j,k] * X[j,k]  (exact, modulo 2**MAC_BITS: every partial sum fits),
//   v = rshift_round(acc, SPEC_SHIFT)  (DATA_BITS; SPEC_SHIFT < 0 shifts left).
//
// Lane u (< SM): xs_word[u*2*XS_BITS +: 2*XS_BITS] = {im, re} of X, w_word[u*2*SPEC_BITS +:
// 2*SPEC_BITS] = {im, re} of W (zero for a lane past Q), sign-extended onto the multiplier
// operands sm_* (lanes SM .. U-1 get zeros); prod_* is the multipliers' exact products.
// At an edge with `valid` the lanes' products are added to the accumulator (replacing it when
// `first`: lane group 0 of a bin); v_* is the bin's value once the last group is added
// (combinational, from the accumulator and this cycle's products).
`default_nettype none
module circulant_spectral #(
    parameter SM        = 1,
    parameter U         = 1,       // the shared multipliers, >= SM
    parameter XS_BITS   = 17,
    parameter SPEC_BITS = 16,
    parameter DATA_BITS = 24,
    parameter MAC_BITS  = 34,
    parameter SPEC_SHIFT = 8,
    parameter MB        = 18,      // the multipliers' b-side (circulant_butterfly's MB)
    parameter CW        = DATA_BITS + MB + 1
) (
    input  wire                        clk,
    input  wire                        valid,
    input  wire                        first,
    input  wire [SM*2*XS_BITS-1:0]     xs_word,
    input  wire [SM*2*SPEC_BITS-1:0]   w_word,
    output wire [U*DATA_BITS-1:0]      sm_ar,
    output wire [U*DATA_BITS-1:0]      sm_ai,
    output wire [U*MB-1:0]             sm_br,
    output wire [U*MB-1:0]             sm_bi,
    input  wire [U*CW-1:0]             prod_re,
    input  wire [U*CW-1:0]             prod_im,
    output wire signed [DATA_BITS-1:0] v_re,
    output wire signed [DATA_BITS-1:0] v_im
);
    localparam XW = 2 * XS_BITS;
    wire [SM*MAC_BITS-1:0] term_re_f, term_im_f;

    genvar u;
    generate
        for (u = 0; u < U; u = u + 1) begin : g_lane
            if (u < SM) begin : g_sm_op
                wire signed [XS_BITS-1:0]   xs_re = xs_word[u*XW +: XS_BITS];
                wire signed [XS_BITS-1:0]   xs_im = xs_word[u*XW + XS_BITS +: XS_BITS];
                wire signed [SPEC_BITS-1:0] w_re  = w_word[u*2*SPEC_BITS +: SPEC_BITS];
                wire signed [SPEC_BITS-1:0] w_im  = w_word[u*2*SPEC_BITS + SPEC_BITS +: SPEC_BITS];
                circulant_round #(.IN_W(XS_BITS), .OUT_W(DATA_BITS), .SHIFT(0)) u_xs_re (.v(xs_re), .y(sm_ar[u*DATA_BITS +: DATA_BITS]));
                circulant_round #(.IN_W(XS_BITS), .OUT_W(DATA_BITS), .SHIFT(0)) u_xs_im (.v(xs_im), .y(sm_ai[u*DATA_BITS +: DATA_BITS]));
                circulant_round #(.IN_W(SPEC_BITS), .OUT_W(MB), .SHIFT(0)) u_w_re (.v(w_re), .y(sm_br[u*MB +: MB]));
                circulant_round #(.IN_W(SPEC_BITS), .OUT_W(MB), .SHIFT(0)) u_w_im (.v(w_im), .y(sm_bi[u*MB +: MB]));
                // Modulo 2**MAC_BITS: every partial sum fits MAC_BITS, so truncated terms are exact.
                circulant_round #(.IN_W(CW), .OUT_W(MAC_BITS), .SHIFT(0)) u_term_re (
                    .v(prod_re[u*CW +: CW]), .y(term_re_f[u*MAC_BITS +: MAC_BITS]));
                circulant_round #(.IN_W(CW), .OUT_W(MAC_BITS), .SHIFT(0)) u_term_im (
                    .v(prod_im[u*CW +: CW]), .y(term_im_f[u*MAC_BITS +: MAC_BITS]));
            end else begin : g_no_sm
                assign sm_ar[u*DATA_BITS +: DATA_BITS] = {DATA_BITS{1'b0}};
                assign sm_ai[u*DATA_BITS +: DATA_BITS] = {DATA_BITS{1'b0}};
                assign sm_br[u*MB +: MB] = {MB{1'b0}};
                assign sm_bi[u*MB +: MB] = {MB{1'b0}};
                wire unused_prod = ^{prod_re[u*CW +: CW], prod_im[u*CW +: CW]};
            end
        end
    endgenerate

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
    wire signed [MAC_BITS-1:0] sum_re = first ? tsum_re : mac_re + tsum_re;
    wire signed [MAC_BITS-1:0] sum_im = first ? tsum_im : mac_im + tsum_im;
    circulant_round #(.IN_W(MAC_BITS), .OUT_W(DATA_BITS), .SHIFT(SPEC_SHIFT)) u_v_re (.v(sum_re), .y(v_re));
    circulant_round #(.IN_W(MAC_BITS), .OUT_W(DATA_BITS), .SHIFT(SPEC_SHIFT)) u_v_im (.v(sum_im), .y(v_im));

    always @(posedge clk) begin
        if (valid) begin
            mac_re <= sum_re;
            mac_im <= sum_im;
        end
    end
endmodule
`default_nettype wire
