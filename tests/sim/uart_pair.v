// Test fixture (tests/sim/test_serial_rtl.py): rtl/uart_tx.v and rtl/uart_rx.v side by side,
// each with its own line, so that one cocotb bench (sim/test_uart.py) checks both; the bench
// connects tx to rx itself for the loopback test.
`default_nettype none
module uart_pair #(
    parameter CLKS_PER_BIT = 8
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       in_valid,
    output wire       in_ready,
    input  wire [7:0] in_data,
    output wire       tx,
    output wire       tx_active,
    input  wire       rx,
    output wire       out_valid,
    output wire [7:0] out_data,
    output wire       frame_error
);
    uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .tx(tx), .active(tx_active)
    );
    uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk(clk), .rst(rst), .rx(rx), .out_valid(out_valid), .out_data(out_data),
        .frame_error(frame_error)
    );
endmodule
`default_nettype wire
