// uart_rx: 8N1 UART receiver (the input side of rtl/serial_top.v). The line idles high; a
// frame is a start bit (low), 8 data bits, least significant first, and a stop bit (high),
// each CLKS_PER_BIT clock cycles long (clock / baud: 104 for 115200 baud at 12 MHz; at least 4).
//
// rx is asynchronous to clk and passes a 2-flop synchronizer first. A low level in idle starts
// a frame. The start bit is sampled again (CLKS_PER_BIT - 1) / 2 cycles after the first low
// sample, so in its middle (the synchronizer delays every sample equally); a high level there
// is a glitch, and the receiver returns to idle. Every further bit is sampled CLKS_PER_BIT
// cycles after the previous sample, in the middle of its bit time, so the two ends' baud rates
// may differ by a few percent (the stop bit's sample drifts 9.5 times the difference).
//
// Timing: with e1 the first clock edge after the start bit's falling edge, the stop bit is
// sampled at edge e1 + 2 + (CLKS_PER_BIT - 1) / 2 + 9 * CLKS_PER_BIT; if it is high, out_valid
// is high for the one cycle after that edge, with the byte on out_data. A low stop bit drops
// the byte and pulses frame_error instead, and the receiver then waits for the line to return
// high. The receiver is back in idle from the stop bit's sample on, so frames may follow each
// other without a gap. There is no ready: the consumer takes a byte in its out_valid cycle.
`default_nettype none
module uart_rx #(
    parameter CLKS_PER_BIT = 104
) (
    input  wire       clk,
    input  wire       rst,            // synchronous, active high
    input  wire       rx,             // the serial line (asynchronous)
    output reg        out_valid,
    output reg  [7:0] out_data,
    output reg        frame_error
);
    localparam CW = $clog2(CLKS_PER_BIT);                  // counts CLKS_PER_BIT - 1 .. 0
    localparam [31:0] HALF_32 = (CLKS_PER_BIT - 1) / 2 - 1;  // first low sample -> mid start bit
    localparam [31:0] LAST_32 = CLKS_PER_BIT - 1;
    localparam [CW-1:0] HALF = HALF_32[CW-1:0];
    localparam [CW-1:0] LAST = LAST_32[CW-1:0];

    localparam [1:0] IDLE = 2'd0, START = 2'd1, BITS = 2'd2, WAIT_HIGH = 2'd3;

    reg          rx_meta, rx_sync;    // the 2-flop synchronizer; rx_sync is safe to use
    reg [1:0]    state;
    reg [CW-1:0] count;               // cycles to the next sample
    reg [3:0]    bit_idx;             // 0..7: data bits, 8: the stop bit
    reg [7:0]    shift;               // data bits received, the latest at the top

    always @(posedge clk) begin
        if (rst) begin
            rx_meta <= 1'b1;
            rx_sync <= 1'b1;
        end else begin
            rx_meta <= rx;
            rx_sync <= rx_meta;
        end
    end

    wire sample = (count == 0);

    always @(posedge clk) begin
        out_valid   <= 1'b0;
        frame_error <= 1'b0;
        if (rst) begin
            state   <= IDLE;
            count   <= 0;
            bit_idx <= 0;
        end else begin
            case (state)
                IDLE: begin
                    if (!rx_sync) begin
                        state <= START;
                        count <= HALF;
                    end
                end
                START: begin
                    if (!sample) count <= count - 1'b1;
                    else if (rx_sync) state <= IDLE;          // a glitch, not a start bit
                    else begin
                        state   <= BITS;
                        count   <= LAST;
                        bit_idx <= 0;
                    end
                end
                BITS: begin
                    if (!sample) count <= count - 1'b1;
                    else if (bit_idx != 4'd8) begin
                        shift   <= {rx_sync, shift[7:1]};
                        bit_idx <= bit_idx + 1'b1;
                        count   <= LAST;
                    end else if (rx_sync) begin
                        out_valid <= 1'b1;
                        out_data  <= shift;
                        state     <= IDLE;
                    end else begin
                        frame_error <= 1'b1;
                        state       <= WAIT_HIGH;
                    end
                end
                default: begin                               // WAIT_HIGH: after a framing error
                    if (rx_sync) state <= IDLE;
                end
            endcase
        end
    end
endmodule
`default_nettype wire
