// sparse_mac: one sparse layer, P multipliers, a compressed weight stream and bias in ROM.
//
// For each input vector x (N_IN elements, streamed in index order) it computes, for
// o = 0 .. N_OUT-1 in order,
//     acc[o] = B[o] + sum over row o's entries (w, c) of w * x[c]    (exact, at ACC_BITS)
// and emits requantize(acc[o]) (OUT_BITS, rtl/requantize.v) when REQUANT != 0, or the raw
// ACC_BITS accumulator when REQUANT == 0. Golden model: kernels/sparse_mac.py (sparse_mac,
// + requantize.py). The accumulators equal dense_mac's for the same matrix: the encoding
// only skips zeros.
//
// Encoding (kernels/sparse_mac.py encode_sparse): row by row, entries (w, d); an entry's column
// is c = c_prev + d + 1 with c_prev = -1 at the start of each row. Rows are padded with
// weight-0 entries to whole words of P entries and hold at least one word; a gap longer than
// 2**D_BITS - 1 zeros is bridged by weight-0 entries (0, 2**D_BITS - 1).
//
// ROM images (layout in kernels/rom.py): W_FILE holds N_WORDS words of P*(W_BITS+D_BITS) bits,
// in row order (row 0's words, then row 1's, ...); entry p of a word sits at bits
// [p*(W_BITS+D_BITS) +: W_BITS+D_BITS], the signed weight in its low W_BITS bits and the
// unsigned delta in the next D_BITS bits (sparse_rom_words). C_FILE holds N_OUT words of
// CNT_BITS bits: the number of words of each row, >= 1 (row_count_words). B_FILE holds N_OUT
// words of B_BITS bits (vector_rom_words).
//
// Protected ROMs (PROTECT; kernels/rom_protect.py, docs/fixed-point.md "Protected ROMs"): with
// PROTECT = 1 (even parity) or 2 (SECDED) each word of the three ROMs is stored as its
// codeword, the data bits low and the check bits above them (kernels.rom.write_mem(...,
// protection=...)): W_FILE words are P*(W_BITS+D_BITS) + C(P*(W_BITS+D_BITS)) bits, C_FILE
// words CNT_BITS + C(CNT_BITS), B_FILE words B_BITS + C(B_BITS), with C(D) the check bits of
// D data bits. Each registered read is decoded by rtl/rom_port.v (which defines C) in the
// same cycle (no added cycle: the timing below holds for every
// PROTECT). `fault` is sticky, cleared by rst: it rises at the edge after a used word decodes
// as detected (parity: an odd number of flips; SECDED: two): an entry word of a computed
// vector, the bias word at a row's first word, the row count at every issued read (it decides
// the row's end). SECDED corrects a single flip silently. With PROTECT = 0 fault stays low.
// PROTECT_LANES (with PROTECT != 0): 0 one code per ROM word (above); 1 one code per lane, lane
// = one entry: W_FILE words are P lanes of W_BITS + D_BITS bits, each its own code, stored
// P*E + P*C(E) bits (E = W_BITS + D_BITS; lane p's check bits at [P*E + p*C(E) +: C(E)];
// kernels.rom.write_mem(..., protection, lanes=P)); C_FILE and B_FILE stay one lane each. Same
// timing.
// A count word detected as corrupt leaves the row's length undefined: outputs (and their
// number) are then meaningless, but fault is already high.
//
// Requirements on the instantiator: N_WORDS = sum of C_FILE's counts; CNT_BITS holds the
// largest count; ACC_BITS is wide enough that no accumulator overflows
// (dense_accumulator_bits of the dense matrix) and B_BITS <= ACC_BITS; the ROMs come from
// one kernels.sparse_mac.encode_sparse(w_q, P, D_BITS) of a matrix with N_IN columns, so every
// entry of nonzero weight has a column < N_IN. (Weight-0 padding entries may land on columns
// >= N_IN; they read 0.) A simulation-only check (not under SYNTHESIS) stops the simulation
// if C_FILE's counts (their data bits, as stored) are 0 or do not add up to N_WORDS.
//
// Datapath: each ROM word's P lanes take their columns from a prefix-add chain
// (c_p = c_{p-1} + d_p + 1, c_{-1} = the previous word's last column, or -1 at a row start)
// and read x[c_p] from the input buffer, a register array with P read ports; the P products
// and the word's partial sum are formed in one stage, like dense_mac's. Resources: P
// multipliers; the two input buffers are 2*N_IN*IN_BITS flip-flops (not RAM) read through P
// 2**COL_BITS-way multiplexers (COL_BITS = clog2(N_IN + P)), plus P*IN_BITS operand-hold
// flip-flops; the entry ROM is block-RAM friendly like dense_mac's weight ROM.
//
// Timing, in rising clock edges (a handshake completes at an edge; R = N_WORDS, S_o = the
// words of rows 0..o, so S_{N_OUT-1} = R). It is dense_mac's with NCH words per row replaced
// by each row's own count:
//   * Two input buffers: one vector loads (one element per edge with in_valid high) while
//     the previous one is computed. in_ready is high while the buffer being loaded is free.
//   * Computing a vector reads one ROM word per edge, R edges with no bubbles (also across
//     rows), starting at C = max(edge of its last input + 1, C of the previous vector + R).
//     Its buffer is free again after its last ROM read, so a later vector's input can be
//     accepted from edge C + R. (A stalled word's x operands are held in registers, so
//     overwriting the buffer cannot change it.)
//   * Output o completes its handshake at edge C + S_o + 3 when out_ready is high
//     (ROM read, columns + products, accumulate, output register).
//   So with in_valid and out_ready held high: an idle engine's latency from its first input
//   to its last output is N_IN + R + 3 edges, and the steady-state initiation interval is
//   max(N_IN, R) (compiler/cost.py sparse_cost). While out_valid && !out_ready the compute
//   pipeline stalls (the output and the pipeline hold); loading continues.
//
// Structure: rtl/mac_input.v with one element per word (input handshake, the two buffers'
// bookkeeping; the buffers are the register arrays here), ROM reads and column chain here,
// rtl/mac_lanes.v (products, accumulate), rtl/engine_output.v (requantize, output register).
module sparse_mac #(
    parameter N_IN     = 4,
    parameter N_OUT    = 4,
    parameter P        = 1,            // parallel multipliers = entries per ROM word
    parameter IN_BITS  = 8,
    parameter W_BITS   = 8,
    parameter D_BITS   = 4,            // delta (zeros skipped) bits per entry
    parameter CNT_BITS = 2,            // bits of a row's word count
    parameter N_WORDS  = 4,            // entry ROM words (sum of the row counts)
    parameter B_BITS   = 16,
    parameter ACC_BITS = 24,
    parameter OUT_BITS = 8,
    parameter SHIFT    = 7,
    parameter RELU     = 1,
    parameter REQUANT  = 1,            // 1: requantized OUT_BITS outputs; 0: raw accumulators
    parameter PROTECT  = 0,            // ROM words: 0 plain, 1 even parity, 2 SECDED (rtl/rom_port.v)
    parameter PROTECT_LANES = 0,       // 0 one code per ROM word; 1 one code per entry (P lanes)
    parameter W_FILE   = "entries.mem",
    parameter C_FILE   = "rows.mem",
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
    localparam E_BITS     = W_BITS + D_BITS;                 // one entry
    // Columns are computed modulo 2**COL_BITS. Every true column (and column + 1) of a valid
    // encoding lies in 0 .. N_IN + P - 1 (trailing padding reaches at most N_IN + P - 2), so
    // the modular arithmetic is exact; deltas wider than COL_BITS can be truncated.
    localparam COL_BITS   = $clog2(N_IN + P);
    localparam X_SLOTS    = 1 << COL_BITS;                   // readable columns, 0 past N_IN
    localparam IDX_BITS   = (N_IN > 1) ? $clog2(N_IN) : 1;
    localparam OIDX_BITS  = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam ADDR_BITS  = (N_WORDS > 1) ? $clog2(N_WORDS) : 1;
    // Counter end values, sliced to the counters' widths.
    localparam [31:0] OIDX_END_32 = N_OUT - 1;
    localparam [OIDX_BITS-1:0] OIDX_END = OIDX_END_32[OIDX_BITS-1:0];
    // ROM words: data bits, then check bits (their width: rtl/rom_port.v).
    localparam W_DATA     = P * E_BITS;
    localparam W_LANES    = (PROTECT_LANES != 0) ? P : 1;        // codes per entry word

    // ---------------------------------------------------------------- memories
    // The ROMs are rtl/rom_port.v instances (the count ROM and stage 1 below).
`ifndef SYNTHESIS
    // At the first clock edge, so after the count ROM's $readmemh (in u_c_rom's initial block).
    reg rom_counts_checked;
    initial rom_counts_checked = 1'b0;
    always @(posedge clk) begin
        if (!rom_counts_checked) begin
            check_rom_counts;
            rom_counts_checked <= 1'b1;
        end
    end
`endif

`ifndef SYNTHESIS
    // Simulation-only sanity check of the ROM images (see "Requirements" above).
    task check_rom_counts;
        integer row, words;
        reg [CNT_BITS-1:0] count;
        begin
            words = 0;
            for (row = 0; row < N_OUT; row = row + 1) begin
                count = u_c_rom.rom[row][CNT_BITS-1:0];   // the data bits (check bits above them)
                if (count == {CNT_BITS{1'b0}}) begin
                    $display("sparse_mac: %s: row %0d has 0 words (must be >= 1)", C_FILE, row);
                    $finish;
                end
                words = words + {{(32 - CNT_BITS){1'b0}}, count};
            end
            if (words != N_WORDS) begin
                $display("sparse_mac: %s: the row counts add up to %0d words, N_WORDS is %0d",
                         C_FILE, words, N_WORDS);
                $finish;
            end
        end
    endtask
`endif

    wire advance;                         // the pipeline moves (the output register is free)

    // ---------------------------------------------------------------- load x (rtl/mac_input.v)
    // One element per word (P = 1): wr_idx is the element's index.
    wire                wr_en, wr_buf, read_buf, buf_full;
    wire [IDX_BITS-1:0] wr_idx;
    wire [IN_BITS-1:0]  wr_elem;
    wire                issue;
    wire                issue_last;

    mac_input #(.N(N_IN), .P(1), .IN_BITS(IN_BITS)) u_input (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .wr_en(wr_en), .wr_buf(wr_buf), .wr_addr(wr_idx), .wr_data(wr_elem),
        .rd_full(buf_full), .rd_buf(read_buf), .rd_done(issue && issue_last)
    );

    // ---------------------------------------------------------------- issue ROM reads
    reg [ADDR_BITS-1:0] w_addr;           // word index within the vector's R words
    reg [CNT_BITS-1:0]  ch;               // word index within row out_idx
    reg [OIDX_BITS-1:0] out_idx;          // o
    wire [CNT_BITS-1:0] row_words;        // C[out_idx], read with out_idx's next value (decoded)
    wire                c_detected, unused_c_corrected;
    assign issue      = buf_full && advance;
    wire ch_last      = (ch == row_words - 1'b1);
    assign issue_last = ch_last && (out_idx == OIDX_END);
    wire row_next     = issue && ch_last;
    wire [OIDX_BITS-1:0] out_idx_next = !row_next ? out_idx :
                                        (out_idx == OIDX_END) ? {OIDX_BITS{1'b0}} :
                                        out_idx + 1'b1;

    // Registered read addressed by the next row index, so row_words always holds the count
    // of the row being issued (also right after reset, where out_idx_next is 0).
    rom_port #(.DEPTH(N_OUT), .DATA_BITS(CNT_BITS), .PROTECT(PROTECT), .FILE(C_FILE)) u_c_rom (
        .clk(clk), .en(1'b1), .addr(rst ? {OIDX_BITS{1'b0}} : out_idx_next),
        .data(row_words), .corrected(unused_c_corrected), .detected(c_detected)
    );

    always @(posedge clk) begin
        if (rst) begin
            w_addr   <= 0;
            ch       <= 0;
            out_idx  <= 0;
        end else if (issue) begin
            w_addr  <= issue_last ? 0 : w_addr + 1'b1;
            ch      <= ch_last ? 0 : ch + 1'b1;
            out_idx <= out_idx_next;
        end
    end

    // ---------------------------------------------------------------- stage 1: ROM reads
    // Registered reads (block-RAM friendly), all enabled by `advance` so a stall freezes them;
    // the ROM words decoded after their registers (rtl/rom_port.v; a pass-through with PROTECT = 0).
    reg rd_valid, rd_first, rd_last, rd_buf;

    wire [P*E_BITS-1:0] w_word;
    wire [B_BITS-1:0]   b_word;
    wire                w_detected, b_detected, unused_w_corrected, unused_b_corrected;
    rom_port #(
        .DEPTH(N_WORDS), .DATA_BITS(W_DATA), .PROTECT(PROTECT), .LANES(W_LANES), .FILE(W_FILE)
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
            rd_buf   <= read_buf;
        end
    end

    // ROM fault, sticky until rst: a used word that decodes as detected. Entry words in stage
    // 1 (valid), the bias there at a row's first word (mac_lanes adds it), the row count at
    // every issue (it decides ch_last).
    reg fault_seen;
    always @(posedge clk) begin
        if (rst) fault_seen <= 1'b0;
        else if ((rd_valid && (w_detected || (rd_first && b_detected))) || (issue && c_detected))
            fault_seen <= 1'b1;
    end
    assign fault = fault_seen;

    // ---------------------------------------------------------------- input buffers
    // Two register arrays (one loads while the other is read), element i of buffer b in
    // x_buf[b]; x_cur exposes the buffer of the word in stage 1, zero past N_IN.
    wire [IN_BITS-1:0] x_cur [0:X_SLOTS-1];

    genvar i;
    generate
        for (i = 0; i < X_SLOTS; i = i + 1) begin : g_x
            if (i < N_IN) begin : g_elem
                localparam [IDX_BITS-1:0] I_IDX = i[IDX_BITS-1:0];
                reg [IN_BITS-1:0] x0, x1;
                always @(posedge clk) begin
                    if (wr_en && wr_idx == I_IDX) begin
                        if (wr_buf) x1 <= wr_elem;
                        else        x0 <= wr_elem;
                    end
                end
                assign x_cur[i] = rd_buf ? x1 : x0;
            end else begin : g_zero
                assign x_cur[i] = {IN_BITS{1'b0}};
            end
        end
    endgenerate

    // --------------------------------------------- stages 2, 3: columns, products, accumulate
    // Column chain: next[p] = column of lane p-1 plus one (next[0]: 0 at a row start, else
    // the previous word's last column + 1, kept in col_next).
    reg  [COL_BITS-1:0] col_next;
    wire [COL_BITS-1:0] next [0:P];
    assign next[0] = rd_first ? {COL_BITS{1'b0}} : col_next;

    // The buffer may be overwritten while a word that reads it is stalled in stage 1 (its
    // buffer is released at its ROM read): the first stalled edge latches the P operands.
    wire [P*IN_BITS-1:0] x_live;
    reg  [P*IN_BITS-1:0] x_held;
    reg                  held;
    wire [P*IN_BITS-1:0] x_ops = held ? x_held : x_live;

    always @(posedge clk) begin
        if (rst) held <= 1'b0;
        else     held <= !advance;
    end

    always @(posedge clk) begin
        if (!advance) x_held <= x_ops;
    end

    // Lane p's weight (the low W_BITS of its entry) and column (prefix chain above).
    wire [P*W_BITS-1:0] w_lanes;

    genvar lane;
    generate
        for (lane = 0; lane < P; lane = lane + 1) begin : g_lane
            wire [E_BITS-1:0]   entry = w_word[lane*E_BITS +: E_BITS];
            wire [D_BITS-1:0]   delta = entry[E_BITS-1:W_BITS];
            wire [COL_BITS-1:0] delta_c;
            if (D_BITS >= COL_BITS) begin : g_delta_trunc
                assign delta_c = delta[COL_BITS-1:0];   // exact modulo 2**COL_BITS (above)
                if (D_BITS > COL_BITS) begin : g_unused
                    wire unused_high = ^delta[D_BITS-1:COL_BITS];
                end
            end else begin : g_delta_ext
                assign delta_c = {{(COL_BITS - D_BITS){1'b0}}, delta};
            end
            wire [COL_BITS-1:0] col = next[lane] + delta_c;
            assign next[lane + 1] = col + 1'b1;

            assign w_lanes[lane*W_BITS +: W_BITS]   = entry[W_BITS-1:0];
            assign x_live[lane*IN_BITS +: IN_BITS] = x_cur[col];
        end
    endgenerate

    always @(posedge clk) begin
        if (advance && rd_valid) col_next <= next[P];
    end

    // Products (x_ops by w_lanes) and accumulate: rtl/mac_lanes.v, as in dense_mac. acc holds
    // a finished B[o] + row o . x while acc_done.
    wire [ACC_BITS-1:0] acc;
    wire                acc_done;

    mac_lanes #(
        .N_ACC(1), .P(P), .IN_BITS(IN_BITS), .W_BITS(W_BITS), .B_BITS(B_BITS), .ACC_BITS(ACC_BITS)
    ) u_lanes (
        .clk(clk), .rst(rst), .advance(advance),
        .valid(rd_valid), .first(rd_first), .last(rd_last),
        .x(x_ops), .w(w_lanes), .bias(b_word), .acc(acc), .done(acc_done)
    );

    // ---------------------------------------------------------------- stage 4: output register
    engine_output #(
        .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .RELU(RELU), .REQUANT(REQUANT)
    ) u_output (
        .clk(clk), .rst(rst), .load(acc_done), .last(1'b1), .acc(acc), .free(advance),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data)
    );
endmodule
