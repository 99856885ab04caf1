// rom_check: decodes one protected ROM word (combinational). Each ROM of the weight engines
// (dense_mac, sparse_mac, circulant_mac, conv2d) is an rtl/rom_port.v, which puts one after each
// read. Golden model and the written contract: kernels/rom_protect.py (decode, its `lanes`);
// docs/fixed-point.md "Protected ROMs". It is bit-exact with
// kernels.rom_protect.decode(code, DATA_BITS, protection, LANES) for every input:
//   data       the DATA_BITS data bits (corrected when `corrected`, as stored otherwise)
//   corrected  SECDED corrected one flipped bit in some lane (status 1)
//   detected   an error that was not corrected in some lane (status 2): parity odd, or SECDED's
//              two flips (syndrome != 0, overall parity even) or a syndrome past the last position
//   With LANES > 1 the status is the worst lane's (the kernel's): detected = some lane detected,
//   corrected = some lane corrected and none detected (never both high). `data` holds every
//   lane as its own decoder leaves it (a corrected lane corrected even when another is detected).
//
// CHECK_BITS: the check bits C of one lane, kernels.rom_protect.check_bits(L, protection):
// 0 (PROTECT 0), 1 (PROTECT 1), R + 1 (PROTECT 2, R Hamming bits). rtl/rom_port.v, where the
// width is defined, passes it (a bench passes the kernel's); it is not recomputed here.
//
// LANES (DATA_BITS % LANES == 0; default 1): the word is LANES equal lanes of L = DATA_BITS /
// LANES data bits (a ROM word's weights), each its own code. Lane i's data at [i*L +: L] (the
// data bits stay in [DATA_BITS-1:0], unchanged), its C check bits at [DATA_BITS + i*C +: C];
// lane i is decoded as the L-bit codeword {code[DATA_BITS + i*C +: C], code[i*L +: L]} by
// rom_lane_check. LANES = 1 is one code over the whole word. CODE_BITS = DATA_BITS + LANES * C.
//
// rom_lane_check (below) decodes one code of D bits. PROTECT: 0 none (code = data, both flags
// 0), 1 even parity, 2 SECDED. The codeword is D + CHECK_BITS wide, data in [D-1:0], check
// bits above:
//   parity: 1 check bit, the XOR of the data bits;
//   SECDED: R + 1 check bits (R = CHECK_BITS - 1, the smallest R with 2**R >= D + R + 1):
//     bit D + i is Hamming check bit i (Hamming position 2**i), bit D + R the overall parity
//     of data and Hamming check bits. Data bit j sits at Hamming position
//     j + 1 + $clog2(j + 2 + $clog2(j + 2)): the non-powers of two 3, 5, 6, 7, 9, ... in
//     order; check bit i is the XOR of the data bits whose position has bit i set.
`default_nettype none
module rom_check #(
    parameter DATA_BITS = 8,
    parameter PROTECT   = 0,          // 0 none, 1 even parity, 2 SECDED
    parameter LANES     = 1,          // codes per word (DATA_BITS % LANES == 0)
    parameter CHECK_BITS = 0          // check bits per lane (rtl/rom_port.v computes them)
) (code, data, corrected, detected);
    localparam D          = DATA_BITS;
    localparam L          = D / LANES;                                          // lane data bits
    localparam C          = CHECK_BITS;                                         // lane check bits
    localparam CODE_BITS  = D + LANES * C;

    input  wire [CODE_BITS-1:0] code;
    output wire [D-1:0]         data;
    output wire                 corrected;
    output wire                 detected;

    generate
        if (LANES == 1) begin : g_word
            rom_lane_check #(.DATA_BITS(D), .PROTECT(PROTECT), .CHECK_BITS(C)) u_lane (
                .code(code), .data(data), .corrected(corrected), .detected(detected)
            );
        end else begin : g_lanes
            wire [LANES-1:0] lane_corrected, lane_detected;
            genvar i;
            for (i = 0; i < LANES; i = i + 1) begin : g_lane
                wire [L+C-1:0] lane_code;
                if (C > 0) begin : g_check
                    assign lane_code = {code[D + i*C +: C], code[i*L +: L]};
                end else begin : g_plain
                    assign lane_code = code[i*L +: L];
                end
                rom_lane_check #(.DATA_BITS(L), .PROTECT(PROTECT), .CHECK_BITS(C)) u_lane (
                    .code(lane_code), .data(data[i*L +: L]),
                    .corrected(lane_corrected[i]), .detected(lane_detected[i])
                );
            end
            assign detected  = |lane_detected;
            assign corrected = (|lane_corrected) && !detected;   // status: the worst lane
        end
    endgenerate
endmodule
`default_nettype wire

// rom_lane_check: one code of DATA_BITS data bits (the contract above, LANES = 1); rom_check's
// private helper, hence the DECLFILENAME waiver.
`default_nettype none
/* verilator lint_off DECLFILENAME */
module rom_lane_check #(
    parameter DATA_BITS = 8,
    parameter PROTECT   = 0,          // 0 none, 1 even parity, 2 SECDED
    parameter CHECK_BITS = 0          // 0, 1 or (SECDED) the Hamming bits + 1 (rom_check's)
) (code, data, corrected, detected);
    localparam D          = DATA_BITS;
    localparam R          = (PROTECT == 2) ? CHECK_BITS - 1 : 1;   // Hamming bits
    localparam CODE_BITS  = D + CHECK_BITS;
    localparam N          = D + R;                  // SECDED: the last Hamming position

    input  wire [CODE_BITS-1:0] code;
    output wire [D-1:0]         data;
    output wire                 corrected;
    output wire                 detected;

    // The Hamming position of data bit j: the (j+1)-th position that is not a power of two.
    function integer position(input integer j);
        position = j + 1 + $clog2(j + 2 + $clog2(j + 2));
    endfunction

    generate
        if (PROTECT == 2) begin : g_secded
            // syndrome bit i: the stored Hamming check bit i XOR the data bits whose position has
            // bit i set, one balanced XOR tree per bit (no chain through the word).
            wire [R-1:0] syndrome;
            wire         odd = ^code;                 // overall parity of all CODE_BITS bits
            wire         past;                        // syndrome > N: no single position

            genvar i, j;
            for (i = 0; i < R; i = i + 1) begin : g_syndrome
                wire [D-1:0] covers;                  // constant: which data bits check bit i covers
                for (j = 0; j < D; j = j + 1) begin : g_cover
                    localparam integer POS = position(j);
                    assign covers[j] = POS[i];
                end
                assign syndrome[i] = code[D + i] ^ (^(code[D-1:0] & covers));
            end
            for (j = 0; j < D; j = j + 1) begin : g_bit
                localparam integer POS = position(j);
                localparam [R-1:0] POS_R = POS[R-1:0];
                assign data[j] = code[j] ^ (odd && (syndrome == POS_R));
            end

            if (N < (1 << R) - 1) begin : g_past
                localparam [31:0] N_32 = N;
                localparam [R-1:0] N_R = N_32[R-1:0];
                assign past = syndrome > N_R;
            end else begin : g_full                 // every syndrome names a position
                assign past = 1'b0;
            end
            assign corrected = odd && !past;
            assign detected  = odd ? past : (syndrome != {R{1'b0}});
        end else if (PROTECT == 1) begin : g_parity
            assign data      = code[D-1:0];
            assign corrected = 1'b0;
            assign detected  = ^code;
        end else begin : g_none
            assign data      = code;
            assign corrected = 1'b0;
            assign detected  = 1'b0;
        end
    endgenerate
endmodule
/* verilator lint_on DECLFILENAME */
`default_nettype wire
