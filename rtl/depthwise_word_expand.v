// depthwise_word_expand: the weights of one rtl/conv2d.v weight-ROM word in depthwise mode
// (DEPTHWISE = 1, P_CI = P_CO) for its P_CO*P_K*P_CO multiplier lanes. Pure wiring
// (combinational, no logic); golden model: kernels.conv_rom.expand_depthwise_word;
// docs/fixed-point.md "Engines (rtl/conv2d.v, rtl/pool2d.v)".
//
// The word holds P_CO*P_K weights, one per output channel and kernel position: lane p*P_K + j
// (output channel p of the group, position j of the kernel step) at [(p*P_K + j)*W_BITS +: W_BITS].
// `weights` is conv2d's dense layout with P_CI = P_CO: lane (co*P_K + j)*P_CO + l takes weight
// co*P_K + j where l == co (output channel co sees only input channel co of the word, which is
// the same channel) and is zero elsewhere. Synthesis removes the multipliers of the constant-zero
// lanes: P_CO*P_K multipliers remain.
`default_nettype none
module depthwise_word_expand #(
    parameter P_CO   = 1,
    parameter P_K    = 1,
    parameter W_BITS = 8,
    // derived (not to be set): the ports' widths
    parameter WD     = P_CO * P_K * W_BITS,
    parameter FD     = WD * P_CO
) (
    input  wire [WD-1:0] word,
    output wire [FD-1:0] weights
);
    genvar co, j, l;
    generate
        for (co = 0; co < P_CO; co = co + 1) begin : g_co
            for (j = 0; j < P_K; j = j + 1) begin : g_k
                for (l = 0; l < P_CO; l = l + 1) begin : g_ci
                    if (l == co) begin : g_diag
                        assign weights[((co * P_K + j) * P_CO + l) * W_BITS +: W_BITS] =
                            word[(co * P_K + j) * W_BITS +: W_BITS];
                    end else begin : g_zero
                        assign weights[((co * P_K + j) * P_CO + l) * W_BITS +: W_BITS] = {W_BITS{1'b0}};
                    end
                end
            end
        end
    endgenerate
endmodule
`default_nettype wire
