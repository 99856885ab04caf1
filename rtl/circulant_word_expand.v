// circulant_word_expand: the weights of one rtl/conv2d.v weight-ROM word for its P_CO*P_K*P_CI
// multipliers. Pure wiring (combinational, no logic); golden model:
// kernels.conv_rom.expand_circulant_word; docs/fixed-point.md "Block-circulant convolutions".
//
// CIRC_B = 0 (dense): the word holds every weight, lane (co*P_K + j)*P_CI + l at
// [((co*P_K + j)*P_CI + l)*W_BITS +: W_BITS]; `weights` is the word.
// CIRC_B = b > 0: the word holds the defining vectors of the (P_CO/b)*P_K*(P_CI/b) b x b
// circulant blocks, element d of vector v at [(v*b + d)*W_BITS +: W_BITS]; lane
// (co*P_K + j)*P_CI + l takes element (co - l) mod b of vector
// ((co/b)*P_K + j)*(P_CI/b) + l/b. P_CO and P_CI are multiples of b.
`default_nettype none
module circulant_word_expand #(
    parameter P_CO   = 1,
    parameter P_K    = 1,
    parameter P_CI   = 1,
    parameter CIRC_B = 0,
    parameter W_BITS = 8,
    // derived (not to be set): the ports' widths
    parameter FD     = P_CO * P_K * P_CI * W_BITS,
    parameter WD     = FD / ((CIRC_B > 0) ? CIRC_B : 1)
) (
    input  wire [WD-1:0] word,
    output wire [FD-1:0] weights
);
    genvar eco, ejj, el;
    generate
        if (CIRC_B > 0) begin : g_circ
            for (eco = 0; eco < P_CO; eco = eco + 1) begin : g_co
                for (ejj = 0; ejj < P_K; ejj = ejj + 1) begin : g_k
                    for (el = 0; el < P_CI; el = el + 1) begin : g_ci
                        localparam integer VEC = ((eco / CIRC_B) * P_K + ejj) * (P_CI / CIRC_B) + el / CIRC_B;
                        localparam integer ELT = ((eco % CIRC_B) - (el % CIRC_B) + CIRC_B) % CIRC_B;
                        assign weights[((eco * P_K + ejj) * P_CI + el) * W_BITS +: W_BITS] =
                            word[(VEC * CIRC_B + ELT) * W_BITS +: W_BITS];
                    end
                end
            end
        end else begin : g_dense
            assign weights = word;
        end
    endgenerate
endmodule
`default_nettype wire
