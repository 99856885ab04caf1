// uart_tx: 8N1 UART transmitter (the output side of rtl/serial_top.v). Each byte leaves as a
// start bit (low), 8 data bits, least significant first, and a stop bit (high), each exactly
// CLKS_PER_BIT clock cycles long (clock / baud: 104 for 115200 baud at 12 MHz); the line idles
// high.
//
// Timing: a byte is taken at an edge with in_valid && in_ready, and tx carries its start bit
// from that edge on. in_ready is high while the transmitter is idle and in the last cycle of a
// stop bit, so with in_valid held high bytes follow each other without a gap, one every
// 10 * CLKS_PER_BIT cycles. `active` is high from a byte's edge to the end of its stop bit.
// tx is a flip-flop output (no glitches). The frame is stored inverted, so the all-zero
// power-up state of FPGA flip-flops (and reset) drives the line idle high.
`default_nettype none
module uart_tx #(
    parameter CLKS_PER_BIT = 104
) (
    input  wire       clk,
    input  wire       rst,            // synchronous, active high
    input  wire       in_valid,
    output wire       in_ready,
    input  wire [7:0] in_data,
    output wire       tx,             // the serial line
    output wire       active
);
    localparam CW = $clog2(CLKS_PER_BIT);
    localparam [31:0] LAST_32 = CLKS_PER_BIT - 1;
    localparam [CW-1:0] LAST = LAST_32[CW-1:0];

    reg [9:0]    frame_n;             // the bits still to send, inverted, the current one at 0
    reg [3:0]    bits_left;           // 10 .. 1 while sending, 0 in idle
    reg [CW-1:0] count;               // cycles left in the current bit

    wire bit_end = (count == 0);
    assign in_ready = (bits_left == 4'd0) || (bits_left == 4'd1 && bit_end);
    assign active   = (bits_left != 4'd0);
    assign tx       = !frame_n[0];

    always @(posedge clk) begin
        if (rst) begin
            frame_n   <= 10'd0;
            bits_left <= 4'd0;
            count     <= 0;
        end else if (in_valid && in_ready) begin
            frame_n   <= ~{1'b1, in_data, 1'b0};
            bits_left <= 4'd10;
            count     <= LAST;
        end else if (active) begin
            if (bit_end) begin
                frame_n   <= {1'b0, frame_n[9:1]};
                bits_left <= bits_left - 1'b1;
                count     <= LAST;
            end else begin
                count <= count - 1'b1;
            end
        end
    end
endmodule
`default_nettype wire
