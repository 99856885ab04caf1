// circulant_control: the sequencer of rtl/circulant_mac.v (its timing is documented there and
// modelled edge by edge by kernels.circulant_mac.CirculantSchedule and compiler/hw/circulant.py's
// CirculantModel). One state at a time:
//   FILL   B/BF cycles: butterfly lanes copy input block blk_j into the FFT buffer;
//   BFLY   log2(B) stages of B/(2*BF) cycles (idx, stage): forward FFT (inverse low) of the
//          block, or the inverse FFT of output block blk_i (inverse high);
//   STORE  ceil((B/2+1)/BF) cycles: bins 0 .. B/2 of block blk_j to the spectrum memory; after
//          the last block (blk_j = Q-1) the MACs start, else the next FILL;
//   MAC    (B/2+1)*QS cycles: bin idx, lane group blk_j, w_addr the spectra word;
//   DRAIN  one cycle: the last registered group is accumulated; then the inverse BFLY;
//   HAND   until `hand` (rtl/circulant_output.v takes the result): the next output block's
//          MACs, or after the last one the next vector (FILL when vec_ready, else IDLE).
// IDLE waits for vec_ready (a whole input vector loaded or loading at this edge).
// last_fill: the last FILL cycle of the vector (its input buffer is free after this edge).
`default_nettype none
module circulant_control #(
    parameter N_IN    = 8,
    parameter N_OUT   = 8,
    parameter B       = 4,
    parameter BF      = 1,
    parameter SM      = 1,
    // derived (not to be set): the ports' widths
    parameter L       = $clog2(B),
    parameter Q       = (N_IN + B - 1) / B,
    parameter QS      = (Q + SM - 1) / SM,
    parameter J_BITS  = (Q > 1) ? $clog2(Q) : 1,
    parameter ST_BITS = (L > 1) ? $clog2(L) : 1,
    parameter WA_BITS = (((N_OUT + B - 1) / B) * (B / 2 + 1) * QS > 1) ?
                        $clog2(((N_OUT + B - 1) / B) * (B / 2 + 1) * QS) : 1
) (
    input  wire               clk,
    input  wire               rst,            // synchronous, active high
    input  wire               vec_ready,
    input  wire               hand,
    output wire               filling,
    output wire               butterflying,
    output wire               storing,
    output wire               macing,
    output wire               handing,
    output wire               last_fill,
    output reg                inverse,        // BFLY: 0 forward FFT of an input block, 1 inverse FFT
    output reg [J_BITS-1:0]   blk_j,          // input block (FILL, STORE) or MAC lane group (MAC)
    output reg [L-1:0]        idx,            // fill / butterfly / store cycle, bin k (MAC)
    output reg [ST_BITS-1:0]  stage,          // butterfly stage - 1
    output reg [WA_BITS-1:0]  w_addr          // (i*H + k)*QS + j/SM, counts through MAC
);
    localparam HB      = B / 2;
    localparam P       = (N_OUT + B - 1) / B;
    localparam I_BITS  = (P > 1) ? $clog2(P) : 1;
    localparam [31:0] J_END_32  = Q - 1;
    localparam [31:0] JS_END_32 = QS - 1;
    localparam [31:0] I_END_32  = P - 1;
    localparam [31:0] ST_END_32 = L - 1;
    localparam [31:0] F_END_32  = B / BF - 1;                  // fill cycles - 1
    localparam [31:0] M_END_32  = HB / BF - 1;                 // cycles per stage - 1
    localparam [31:0] S_END_32  = (HB + 1 + BF - 1) / BF - 1;  // store cycles - 1
    localparam [31:0] K_END_32  = HB;
    localparam [J_BITS-1:0]  J_END  = J_END_32[J_BITS-1:0];
    localparam [J_BITS-1:0]  JS_END = JS_END_32[J_BITS-1:0];
    localparam [I_BITS-1:0]  I_END  = I_END_32[I_BITS-1:0];
    localparam [ST_BITS-1:0] ST_END = ST_END_32[ST_BITS-1:0];
    localparam [L-1:0]       F_END  = F_END_32[L-1:0];
    localparam [L-1:0]       M_END  = M_END_32[L-1:0];
    localparam [L-1:0]       S_END  = S_END_32[L-1:0];
    localparam [L-1:0]       K_END  = K_END_32[L-1:0];     // bin B/2

    localparam [2:0] S_IDLE = 3'd0, S_FILL = 3'd1, S_BFLY = 3'd2, S_STORE = 3'd3,
                     S_MAC  = 3'd4, S_DRAIN = 3'd5, S_HAND = 3'd6;

    reg [2:0]        state;
    reg [I_BITS-1:0] blk_i;                   // output block (MAC, BFLY inverse, HAND)

    assign filling      = (state == S_FILL);
    assign butterflying = (state == S_BFLY);
    assign storing      = (state == S_STORE);
    assign macing       = (state == S_MAC);
    assign handing      = (state == S_HAND);
    assign last_fill    = filling && idx == F_END && blk_j == J_END;

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
endmodule
`default_nettype wire
