// circulant_output: the output side of rtl/circulant_mac.v: the output buffer, the bias ROM
// and the output register. Golden model: the end of kernels.circulant_mac.circulant_mac,
//   acc[o] = rshift_round(Re v[n], IFFT_GUARD) + B[o]   (o = i*B + n),
// then requantize (rtl/engine_output.v; REQUANT, RELU, SHIFT as circulant_mac's).
//
// `hand_req` (the controller waits in S_HAND) copies the inverse FFT's result (the B real parts
// in fft_re, value n at [n*DATA_BITS +: DATA_BITS]) into the output buffer once the outputs of
// the block before have all been taken into the output register (at the edge of the last one
// at the latest): `hand` is high at that edge. They leave from there one per `advance` of the
// output register while the next block computes; out_row counts the outputs o over the
// vector (the last block may hold fewer than B: N_OUT need not be a multiple of B).
//
// Bias ROM (B_FILE; kernels/circulant_rom.py): N_OUT words of B_BITS bits, read combinationally
// at out_row (rtl/rom_port.v, PROTECT as circulant_mac's, one code per word); b_detected: the
// word being output decodes as detected (meaningful while `busy`).
`default_nettype none
module circulant_output #(
    parameter N_OUT      = 8,
    parameter B          = 4,
    parameter DATA_BITS  = 24,
    parameter IFFT_GUARD = 2,
    parameter B_BITS     = 16,
    parameter ACC_BITS   = 22,
    parameter OUT_BITS   = 8,
    parameter SHIFT      = 10,
    parameter RELU       = 1,
    parameter REQUANT    = 1,
    parameter PROTECT    = 0,
    parameter B_FILE     = "bias.mem"
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   hand_req,    // a result waits in fft_re
    input  wire [B*DATA_BITS-1:0] fft_re,
    output wire                   hand,        // it moves into the output buffer at this edge
    output reg                    busy,        // the output buffer holds outputs still to emit
    output wire                   b_detected,
    output wire                   out_valid,
    input  wire                   out_ready,
    output wire signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data
);
    localparam L       = $clog2(B);
    localparam OR_BITS = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam [31:0] OR_END_32 = N_OUT - 1;
    localparam [31:0] N_END_32  = B - 1;
    localparam [OR_BITS-1:0] OR_END = OR_END_32[OR_BITS-1:0];
    localparam [L-1:0]       N_END  = N_END_32[L-1:0];

    reg [OR_BITS-1:0] out_row;     // the output being emitted: o = i*B + n
    reg [L-1:0]       out_n;       // ... its n
    reg signed [DATA_BITS-1:0] obuf [0:B-1];
    wire advance;                  // the output register can take a value

    wire out_end = (out_n == N_END) || (out_row == OR_END);    // the block's last output
    assign hand  = hand_req && (!busy || (advance && out_end));
    integer on;
    always @(posedge clk) begin
        if (hand)
            for (on = 0; on < B; on = on + 1) obuf[on] <= fft_re[on*DATA_BITS +: DATA_BITS];
    end

    always @(posedge clk) begin
        if (rst) begin
            busy    <= 1'b0;
            out_n   <= 0;
            out_row <= 0;
        end else begin
            if (busy && advance) begin
                out_n   <= out_n + 1'b1;
                out_row <= (out_row == OR_END) ? 0 : out_row + 1'b1;
                if (out_end) busy <= 1'b0;
            end
            if (hand) begin
                busy  <= 1'b1;
                out_n <= 0;
            end
        end
    end

    // ---------------------------------------------------------------- output value
    wire signed [DATA_BITS-1:0] out_re = obuf[out_n];
    wire signed [ACC_BITS-1:0] conv;                  // round(Re v[n] / 2**IFFT_GUARD)
    circulant_round #(.IN_W(DATA_BITS), .OUT_W(ACC_BITS), .SHIFT(IFFT_GUARD)) u_conv (.v(out_re), .y(conv));
    wire [B_BITS-1:0] b_word;
    wire              unused_b_corrected;
    rom_port #(.DEPTH(N_OUT), .DATA_BITS(B_BITS), .PROTECT(PROTECT), .REGISTERED(0), .FILE(B_FILE)) u_b_rom (
        .clk(1'b0), .en(1'b0), .addr(out_row),
        .data(b_word), .corrected(unused_b_corrected), .detected(b_detected)
    );
    wire signed [ACC_BITS-1:0] bias;
    circulant_round #(.IN_W(B_BITS), .OUT_W(ACC_BITS), .SHIFT(0)) u_bias (.v(b_word), .y(bias));
    wire signed [ACC_BITS-1:0] acc = conv + bias;

    // ---------------------------------------------------------------- output register
    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT)
    ) u_output (
        .clk(clk), .rst(rst), .load(busy), .last(1'b1), .acc(acc), .free(advance),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );
endmodule
`default_nettype wire
