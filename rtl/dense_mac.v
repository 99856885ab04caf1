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
    output wire signed [((REQUANT != 0) ? OUT_BITS : ACC_BITS)-1:0] out_data
);
    localparam NCH        = (N_IN + P - 1) / P;          // ROM words per output
    localparam ROM_DEPTH  = N_OUT * NCH;
    localparam LAST_LANE  = (N_IN - 1) % P;              // lane of x[N_IN-1] in the last word
    localparam PROD_BITS  = W_BITS + IN_BITS;
    localparam LANE_BITS  = (P > 1) ? $clog2(P) : 1;
    localparam CH_BITS    = (NCH > 1) ? $clog2(NCH) : 1;
    localparam OIDX_BITS  = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam ADDR_BITS  = (ROM_DEPTH > 1) ? $clog2(ROM_DEPTH) : 1;
    // Counter end values, sliced to the counters' widths.
    localparam [31:0] LANE_END_32 = P - 1;
    localparam [31:0] LAST_LANE_32 = LAST_LANE;
    localparam [31:0] CH_END_32 = NCH - 1;
    localparam [31:0] OIDX_END_32 = N_OUT - 1;
    localparam [LANE_BITS-1:0] LANE_END  = LANE_END_32[LANE_BITS-1:0];
    localparam [LANE_BITS-1:0] LANE_LAST = LAST_LANE_32[LANE_BITS-1:0];
    localparam [CH_BITS-1:0]   CH_END    = CH_END_32[CH_BITS-1:0];
    localparam [OIDX_BITS-1:0] OIDX_END  = OIDX_END_32[OIDX_BITS-1:0];

    // ---------------------------------------------------------------- memories
    reg [P*W_BITS-1:0]  w_rom [0:ROM_DEPTH-1];
    reg [B_BITS-1:0]    b_rom [0:N_OUT-1];
    // Two input buffers (one loads while the other is read), P elements per word like w_rom;
    // buffer b, word c at address {b, c}.
    reg [P*IN_BITS-1:0] x_mem [0:(2 << CH_BITS)-1];

    initial begin
        $readmemh(W_FILE, w_rom);
        $readmemh(B_FILE, b_rom);
    end

    // The pipeline moves whenever the output register is free or being emptied.
    wire advance = !out_valid || out_ready;

    // ---------------------------------------------------------------- load x
    reg [1:0]           full;             // input buffer holds a vector not yet fully read
    reg                 load_buf;         // buffer being loaded
    reg                 read_buf;         // buffer being read (issued) next
    reg [LANE_BITS-1:0] load_lane;
    reg [CH_BITS-1:0]   load_ch;
    reg [P*IN_BITS-1:0] x_partial;        // word being assembled; unfilled lanes stay 0
    wire [P*IN_BITS-1:0] x_partial_next;

    assign in_ready = !full[load_buf];
    wire accept      = in_valid && in_ready;
    wire last_elem   = (load_ch == CH_END) && (load_lane == LANE_LAST);
    wire word_full   = (load_lane == LANE_END) || last_elem;

    genvar lane;
    generate
        for (lane = 0; lane < P; lane = lane + 1) begin : g_load_lane
            assign x_partial_next[lane*IN_BITS +: IN_BITS] =
                (load_lane == lane) ? in_data : x_partial[lane*IN_BITS +: IN_BITS];
        end
    endgenerate

    always @(posedge clk) begin
        if (accept && word_full) x_mem[{load_buf, load_ch}] <= x_partial_next;
    end

    // ---------------------------------------------------------------- issue ROM reads
    reg [ADDR_BITS-1:0] w_addr;           // o*NCH + c
    reg [CH_BITS-1:0]   ch;               // c
    reg [OIDX_BITS-1:0] out_idx;          // o
    wire issue      = full[read_buf] && advance;
    wire ch_last    = (ch == CH_END);
    wire issue_last = ch_last && (out_idx == OIDX_END);

    always @(posedge clk) begin
        if (rst) begin
            full      <= 2'b00;
            load_buf  <= 1'b0;
            read_buf  <= 1'b0;
            load_lane <= 0;
            load_ch   <= 0;
            x_partial <= 0;
            w_addr    <= 0;
            ch        <= 0;
            out_idx   <= 0;
        end else begin
            if (accept) begin
                x_partial <= word_full ? {P*IN_BITS{1'b0}} : x_partial_next;
                load_lane <= word_full ? 0 : load_lane + 1'b1;
                if (word_full) load_ch <= last_elem ? 0 : load_ch + 1'b1;
                if (last_elem) begin
                    full[load_buf] <= 1'b1;
                    load_buf       <= !load_buf;
                end
            end
            if (issue) begin
                w_addr <= issue_last ? 0 : w_addr + 1'b1;
                ch     <= ch_last ? 0 : ch + 1'b1;
                if (ch_last) out_idx <= issue_last ? 0 : out_idx + 1'b1;
                if (issue_last) begin
                    full[read_buf] <= 1'b0;
                    read_buf       <= !read_buf;
                end
            end
        end
    end

    // ---------------------------------------------------------------- stage 1: ROM reads
    // Registered reads (block-RAM friendly), all enabled by `advance` so a stall freezes them.
    reg [P*W_BITS-1:0]  w_word;
    reg [P*IN_BITS-1:0] x_word;
    reg [B_BITS-1:0]    b_word;
    reg rd_valid, rd_first, rd_last;

    always @(posedge clk) begin
        if (advance) begin
            w_word <= w_rom[w_addr];
            x_word <= x_mem[{read_buf, ch}];
            b_word <= b_rom[out_idx];
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            rd_valid <= 1'b0;
        end else if (advance) begin
            rd_valid <= issue;
            rd_first <= (ch == 0);
            rd_last  <= ch_last;
        end
    end

    // ---------------------------------------------------------------- stage 2: P products
    // Arithmetic is modulo 2**ACC_BITS: the exact sum fits in ACC_BITS, so truncating
    // intermediate terms to ACC_BITS cannot change it.
    wire signed [ACC_BITS-1:0] partial [0:P];   // partial[p] = sum of lanes < p
    wire signed [ACC_BITS-1:0] bias;

    generate
        if (ACC_BITS > B_BITS) begin : g_bias_ext
            assign bias = {{(ACC_BITS - B_BITS){b_word[B_BITS-1]}}, b_word};
        end else begin : g_bias_same
            assign bias = b_word;
        end
    endgenerate

    assign partial[0] = rd_first ? bias : {ACC_BITS{1'b0}};

    generate
        for (lane = 0; lane < P; lane = lane + 1) begin : g_mul
            wire signed [W_BITS-1:0]  w = w_word[lane*W_BITS +: W_BITS];
            wire signed [IN_BITS-1:0] x = x_word[lane*IN_BITS +: IN_BITS];
            wire signed [PROD_BITS-1:0] prod =
                $signed({{IN_BITS{w[W_BITS-1]}}, w}) * $signed({{W_BITS{x[IN_BITS-1]}}, x});
            wire signed [ACC_BITS-1:0] term;
            if (ACC_BITS > PROD_BITS) begin : g_ext
                assign term = {{(ACC_BITS - PROD_BITS){prod[PROD_BITS-1]}}, prod};
            end else if (ACC_BITS == PROD_BITS) begin : g_same
                assign term = prod;
            end else begin : g_trunc
                assign term = prod[ACC_BITS-1:0];
                // The dropped high bits are not needed (see above); named unused_* for lint.
                wire unused_high = ^prod[PROD_BITS-1:ACC_BITS];
            end
            assign partial[lane + 1] = partial[lane] + term;
        end
    endgenerate

    reg signed [ACC_BITS-1:0] dot;        // bias (first word only) + this word's products
    reg dot_valid, dot_first, dot_last;

    always @(posedge clk) begin
        if (advance) dot <= partial[P];
    end

    always @(posedge clk) begin
        if (rst) begin
            dot_valid <= 1'b0;
        end else if (advance) begin
            dot_valid <= rd_valid;
            dot_first <= rd_first;
            dot_last  <= rd_last;
        end
    end

    // ---------------------------------------------------------------- stage 3: accumulate
    reg signed [ACC_BITS-1:0] acc;
    reg acc_done;                         // acc holds a finished B[o] + W[o,:] . x

    always @(posedge clk) begin
        if (advance && dot_valid) acc <= dot_first ? dot : acc + dot;
    end

    always @(posedge clk) begin
        if (rst) acc_done <= 1'b0;
        else if (advance) acc_done <= dot_valid && dot_last;
    end

    // ---------------------------------------------------------------- stage 4: output register
    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT)
    ) u_output (
        .clk(clk), .rst(rst), .advance(advance), .load(acc_done), .acc(acc),
        .out_valid(out_valid), .out_data(out_data)
    );
endmodule
