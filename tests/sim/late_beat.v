// late_beat: a test fixture for sim/streams.py's expect_no_output. After reset it accepts
// nothing and presents one output beat, DELAY rising edges after reset is released (out_valid
// high for one cycle whatever out_ready says).
`default_nettype none
module late_beat #(
    parameter DELAY = 10
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       in_valid,
    input  wire [7:0] in_data,
    output wire       in_ready,
    output reg        out_valid,
    input  wire       out_ready,
    output wire [7:0] out_data
);
    reg [15:0] count;
    always @(posedge clk) begin
        if (rst) begin
            count     <= 16'd0;
            out_valid <= 1'b0;
        end else begin
            count     <= count + 16'd1;
            out_valid <= (count == DELAY - 1);
        end
    end
    assign in_ready = 1'b0;
    assign out_data = 8'd0;
    wire unused = &{1'b0, in_valid, in_data, out_ready};
endmodule
`default_nettype wire
