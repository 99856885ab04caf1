// circulant_round: y = rshift_round(v, SHIFT) of docs/fixed-point.md, resized to OUT_W bits:
//   SHIFT > 0: floor((v + 2**(SHIFT-1)) / 2**SHIFT)  (round half up);  SHIFT == 0: v;
//   SHIFT < 0: v * 2**-SHIFT. The caller guarantees the result fits OUT_W (the dropped high
//   bits, if any, are sign copies). Combinational. The helper of circulant_mac and its
//   parts (circulant_butterfly, circulant_output).
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
