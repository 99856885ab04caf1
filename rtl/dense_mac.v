// dense_mac: one dense layer, P multipliers, weights and bias in ROM.
//
// For each input vector x (N_IN elements, streamed in index order) it computes, for
// o = 0 .. N_OUT-1 in order,
//     acc[o] = B[o] + sum_i W[o, i] * x[i]          (exact, at ACC_BITS; docs/fixed-point.md "dense")
// and emits requantize(acc[o]) (OUT_BITS, rtl/requantize.v) when REQUANT != 0, or the raw
// ACC_BITS accumulator when REQUANT == 0. Golden model: kernels/dense_mac.py (+ requantize.py).
//
// ROM images (layout in kernels/rom.py): W_FILE holds N_OUT*NCH words of P*W_BITS bits; word
// o*NCH + c packs W[o, c*P + p] at bits [p*W_BITS +: W_BITS] (zero past N_IN). B_FILE holds
// N_OUT words of B_BITS bits. NCH = ceil(N_IN / P).
//
// Protected ROMs (PROTECT; kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): with
// PROTECT = 1 (even parity) or 2 (SECDED) each ROM word above is stored as its codeword, the
// data bits low and the check bits above them (kernels.rom.write_mem(..., protection=...)):
// W_FILE words are P*W_BITS + C(P*W_BITS) bits, B_FILE words B_BITS + C(B_BITS), with C(D)
// the check bits of D data bits. Each registered read is decoded by rtl/rom_port.v (which
// defines C) in the same cycle (no added cycle: the timing below holds
// for every PROTECT). `fault` is sticky, cleared by rst: it rises at the edge after a read whose
// word the engine uses (a weight word of a computed vector; the bias word at the first word of
// an output) decodes as detected (parity: an odd number of flips; SECDED: two). SECDED corrects
// a single flip silently. With PROTECT = 0 fault stays low.
// PROTECT_LANES (with PROTECT != 0): 0 one code per ROM word (above); 1 one code per lane, lane
// = one weight: W_FILE words are P lanes of W_BITS bits, each its own code, stored
// P*W_BITS + P*C(W_BITS) bits (lane p's check bits at [P*W_BITS + p*C +: C], C = C(W_BITS);
// kernels.rom.write_mem(..., protection, lanes=P)); B_FILE stays one lane (B_BITS + C(B_BITS)).
// A flip in each of several weights of one word is then corrected; two in one weight detected.
// Same timing.
//
// Requirements on the instantiator: ACC_BITS is wide enough that no accumulator overflows
// (dense_accumulator_bits) and B_BITS <= ACC_BITS.
//
// Timing, in rising clock edges (a handshake completes at an edge; R = N_OUT * NCH):
//   * Two input buffers: one vector loads (one element per edge with in_valid high) while
//     the previous one is computed. in_ready is high while the buffer being loaded is free.
//   * Computing a vector reads one ROM word per edge, R edges with no bubbles, starting at
//     C = max(edge of its last input + 1, C of the previous vector + R). Its buffer is free
//     again after its last read, so a later vector's input can be accepted from edge C + R.
//   * Output o completes its handshake at edge C + (o+1)*NCH + 3 when out_ready is high
//     (ROM read, products, accumulate, output register).
//   So with in_valid and out_ready held high: an idle engine's latency from its first input
//   to its last output is N_IN + R + 3 edges, and the steady-state initiation interval is
//   max(N_IN, R). While out_valid && !out_ready the compute pipeline stalls (the output and
//   the pipeline hold); loading continues.
//
// Structure: rtl/mac_input.v (input handshake, word packing, the two buffers' bookkeeping; the
// buffers themselves are x_mem here), ROM reads here, rtl/mac_lanes.v (products, accumulate),
// rtl/engine_output.v (requantize, output register).
module dense_mac #(
    parameter N_IN     = 4,
    parameter N_OUT    = 4,
    parameter P        = 1,            // parallel multipliers
    parameter IN_BITS  = 8,
    parameter W_BITS   = 8,
    parameter B_BITS   = 16,
    parameter ACC_BITS = 24,
    parameter OUT_BITS = 8,
    parameter SHIFT    = 7,
    parameter RELU     = 1,
    parameter REQUANT  = 1,            // 1: requantized OUT_BITS outputs; 0: raw accumulators
    parameter PROTECT  = 0,            // ROM words: 0 plain, 1 even parity, 2 SECDED (rtl/rom_port.v)
    parameter PROTECT_LANES = 0,       // 0 one code per ROM word; 1 one code per weight (P lanes)
    parameter W_FILE   = "weights.mem",
    parameter B_FILE   = "bias.mem"
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                in_valid,
    output wire                in_ready,
    input  wire signed [IN_BITS-1:0] in_data,
    output wire                out_valid,
    input  wire                out_ready,
    output wire signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data,
    output wire                fault           // sticky: a used ROM word was uncorrectable
);
    localparam NCH        = (N_IN + P - 1) / P;          // ROM words per output
    localparam ROM_DEPTH  = N_OUT * NCH;
    localparam CH_BITS    = (NCH > 1) ? $clog2(NCH) : 1;
    localparam OIDX_BITS  = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam ADDR_BITS  = (ROM_DEPTH > 1) ? $clog2(ROM_DEPTH) : 1;
    // Counter end values, sliced to the counters' widths.
    localparam [31:0] CH_END_32 = NCH - 1;
    localparam [31:0] OIDX_END_32 = N_OUT - 1;
    localparam [CH_BITS-1:0]   CH_END    = CH_END_32[CH_BITS-1:0];
    localparam [OIDX_BITS-1:0] OIDX_END  = OIDX_END_32[OIDX_BITS-1:0];
    // ROM words: data bits, then check bits (their width: rtl/rom_port.v).
    localparam W_DATA     = P * W_BITS;
    localparam W_LANES    = (PROTECT_LANES != 0) ? P : 1;        // codes per weight word

    // ---------------------------------------------------------------- memories
    // The ROMs are rtl/rom_port.v instances (stage 1 below).
    // Two input buffers (one loads while the other is read), P elements per word like a weight ROM word;
    // buffer b, word c at address {b, c}.
    reg [P*IN_BITS-1:0] x_mem [0:(2 << CH_BITS)-1];

    wire advance;                         // the pipeline moves (the output register is free)

    // ---------------------------------------------------------------- load x (rtl/mac_input.v)
    wire                 wr_en, wr_buf, read_buf, buf_full;
    wire [CH_BITS-1:0]   wr_ch;
    wire [P*IN_BITS-1:0] wr_word;
    wire                 issue;
    wire                 issue_last;

    mac_input #(.N(N_IN), .P(P), .IN_BITS(IN_BITS)) u_input (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .wr_en(wr_en), .wr_buf(wr_buf), .wr_addr(wr_ch), .wr_data(wr_word),
        .rd_full(buf_full), .rd_buf(read_buf), .rd_done(issue && issue_last)
    );

    always @(posedge clk) begin
        if (wr_en) x_mem[{wr_buf, wr_ch}] <= wr_word;
    end

    // ---------------------------------------------------------------- issue ROM reads
    reg [ADDR_BITS-1:0] w_addr;           // o*NCH + c
    reg [CH_BITS-1:0]   ch;               // c
    reg [OIDX_BITS-1:0] out_idx;          // o
    assign issue      = buf_full && advance;
    wire ch_last      = (ch == CH_END);
    assign issue_last = ch_last && (out_idx == OIDX_END);

    always @(posedge clk) begin
        if (rst) begin
            w_addr    <= 0;
            ch        <= 0;
            out_idx   <= 0;
        end else if (issue) begin
            w_addr <= issue_last ? 0 : w_addr + 1'b1;
            ch     <= ch_last ? 0 : ch + 1'b1;
            if (ch_last) out_idx <= issue_last ? 0 : out_idx + 1'b1;
        end
    end

    // ---------------------------------------------------------------- stage 1: ROM reads
    // Registered reads (block-RAM friendly), all enabled by `advance` so a stall freezes them;
    // the ROM words decoded after their registers (rtl/rom_port.v; a pass-through with PROTECT = 0).
    reg [P*IN_BITS-1:0] x_word;
    reg rd_valid, rd_first, rd_last;

    always @(posedge clk) begin
        if (advance) x_word <= x_mem[{read_buf, ch}];
    end

    wire [P*W_BITS-1:0] w_word;
    wire [B_BITS-1:0]   b_word;
    wire                w_detected, b_detected, unused_w_corrected, unused_b_corrected;
    rom_port #(
        .DEPTH(ROM_DEPTH), .DATA_BITS(W_DATA), .PROTECT(PROTECT), .LANES(W_LANES), .FILE(W_FILE)
    ) u_w_rom (
        .clk(clk), .en(advance), .addr(w_addr),
        .data(w_word), .corrected(unused_w_corrected), .detected(w_detected)
    );
    rom_port #(.DEPTH(N_OUT), .DATA_BITS(B_BITS), .PROTECT(PROTECT), .FILE(B_FILE)) u_b_rom (
        .clk(clk), .en(advance), .addr(out_idx),
        .data(b_word), .corrected(unused_b_corrected), .detected(b_detected)
    );

    always @(posedge clk) begin
        if (rst) begin
            rd_valid <= 1'b0;
        end else if (advance) begin
            rd_valid <= issue;
            rd_first <= (ch == 0);
            rd_last  <= ch_last;
        end
    end

    // ROM fault, sticky until rst: a used word (stage 1 valid; the bias only at an output's
    // first word, where mac_lanes adds it) that decodes as detected.
    reg fault_seen;
    always @(posedge clk) begin
        if (rst) fault_seen <= 1'b0;
        else if (rd_valid && (w_detected || (rd_first && b_detected))) fault_seen <= 1'b1;
    end
    assign fault = fault_seen;

    // ------------------------------------------------------ stages 2, 3: P products, accumulate
    // (rtl/mac_lanes.v) acc holds a finished B[o] + W[o,:] . x while acc_done.
    wire [ACC_BITS-1:0] acc;
    wire                acc_done;

    mac_lanes #(
        .N_ACC(1), .P(P), .IN_BITS(IN_BITS), .W_BITS(W_BITS), .B_BITS(B_BITS), .ACC_BITS(ACC_BITS)
    ) u_lanes (
        .clk(clk), .rst(rst), .advance(advance),
        .valid(rd_valid), .first(rd_first), .last(rd_last),
        .x(x_word), .w(w_word), .bias(b_word), .acc(acc), .done(acc_done)
    );

    // ---------------------------------------------------------------- stage 4: output register
    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT)
    ) u_output (
        .clk(clk), .rst(rst), .load(acc_done), .last(1'b1), .acc(acc), .free(advance),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );
endmodule
