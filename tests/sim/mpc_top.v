// Hand-made stand-in for a generated design (test fixture): dense + ReLU, dense, argmax,
// with the port list of the generated mpc_top (fault: the OR of the engines' sticky ROM faults).
// Parameters come from the test; PROTECT (both layers' ROMs) as rtl/dense_mac.v's.
module mpc_top #(
    parameter N_IN       = 6,
    parameter N_HIDDEN   = 5,
    parameter N_CLASSES  = 3,
    parameter IN_BITS    = 8,
    parameter W_BITS     = 8,
    parameter HID_BITS   = 8,
    parameter P1         = 4,
    parameter B1_BITS    = 16,
    parameter ACC1_BITS  = 20,
    parameter SHIFT1     = 6,
    parameter P2         = 2,
    parameter B2_BITS    = 16,
    parameter LOGIT_BITS = 20,
    parameter IDX_BITS   = 2,
    parameter PROTECT    = 0,
    parameter L1_W_FILE  = "l1_w.mem",
    parameter L1_B_FILE  = "l1_b.mem",
    parameter L2_W_FILE  = "l2_w.mem",
    parameter L2_B_FILE  = "l2_b.mem"
) (
    input  wire                          clk,
    input  wire                          rst,
    input  wire                          in_valid,
    output wire                          in_ready,
    input  wire signed [IN_BITS-1:0]     in_data,
    output wire                          out_valid,
    input  wire                          out_ready,
    output wire [N_CLASSES*LOGIT_BITS-1:0] out_logits,
    output wire [IDX_BITS-1:0]           out_argmax,
    output wire                          fault
);
    wire                         h_valid, h_ready;
    wire signed [HID_BITS-1:0]   h_data;
    wire                         l_valid, l_ready;
    wire signed [LOGIT_BITS-1:0] l_data;
    wire                         fault1, fault2;
    assign fault = fault1 | fault2;

    dense_mac #(
        .N_IN(N_IN), .N_OUT(N_HIDDEN), .P(P1), .IN_BITS(IN_BITS), .W_BITS(W_BITS),
        .B_BITS(B1_BITS), .ACC_BITS(ACC1_BITS), .OUT_BITS(HID_BITS), .SHIFT(SHIFT1),
        .RELU(1), .REQUANT(1), .PROTECT(PROTECT), .W_FILE(L1_W_FILE), .B_FILE(L1_B_FILE)
    ) u_layer1 (
        .clk(clk), .rst(rst),
        .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .out_valid(h_valid), .out_ready(h_ready), .out_data(h_data), .fault(fault1)
    );

    dense_mac #(
        .N_IN(N_HIDDEN), .N_OUT(N_CLASSES), .P(P2), .IN_BITS(HID_BITS), .W_BITS(W_BITS),
        .B_BITS(B2_BITS), .ACC_BITS(LOGIT_BITS), .OUT_BITS(HID_BITS), .SHIFT(0),
        .RELU(0), .REQUANT(0), .PROTECT(PROTECT), .W_FILE(L2_W_FILE), .B_FILE(L2_B_FILE)
    ) u_layer2 (
        .clk(clk), .rst(rst),
        .in_valid(h_valid), .in_ready(h_ready), .in_data(h_data),
        .out_valid(l_valid), .out_ready(l_ready), .out_data(l_data), .fault(fault2)
    );

    argmax #(.N(N_CLASSES), .W(LOGIT_BITS), .IDX_BITS(IDX_BITS)) u_argmax (
        .clk(clk), .rst(rst),
        .in_valid(l_valid), .in_ready(l_ready), .in_data(l_data),
        .out_valid(out_valid), .out_ready(out_ready),
        .out_logits(out_logits), .out_argmax(out_argmax)
    );
endmodule
