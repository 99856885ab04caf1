// mpc_serial_top: a board-ready top level around a generated design (`mpc_top`): a UART byte
// interface, so the design needs only the pins clk, rx, tx and two status LEDs.
//
// Line: 8N1 (rtl/uart_rx.v, rtl/uart_tx.v), CLKS_PER_BIT clock cycles per bit (clock / baud;
// the default 104 is 115200 baud at a 12 MHz board clock).
//
// Protocol. The host sends one input vector: N_IN features in the design's stream order
// (design.json "input_order"), each IN_BYTES = ceil(IN_BITS / 8) bytes, little-endian two's
// complement (the bits above IN_BITS are ignored). When the result is ready the wrapper sends
// the class (the argmax: CLASS_BYTES = ceil(CLASS_BITS / 8) bytes, one up to 256 classes) and
// then the N_CLASSES logits in order, each LOGIT_BYTES = ceil(LOGIT_BITS / 8) bytes,
// little-endian, sign-extended: BYTES_OUT = CLASS_BYTES + N_CLASSES * LOGIT_BYTES bytes.
// There is no other framing: bytes are counted, and vectors are answered in order.
//
// Flow control (the wrapper never stalls the line): the input buffer holds FIFO_VECTORS whole
// vectors, so no byte is lost while the host has at most FIFO_VECTORS vectors without a
// complete reply. With FIFO_VECTORS = 2 (the default) the host may send vector k+1 right after
// vector k, while reply k is still to come, and must have received reply k before it sends
// vector k+2: both directions of the line stay busy. With FIFO_VECTORS = 1 it waits for each
// reply. A feature that finds the buffer full (a host breaking this rule) discards its whole
// vector, which is never answered, and lights `error`.
//
// Resynchronization: a pause of IDLE_BITS bit times (default 2048: 18 ms at 115200 baud) in the
// middle of a vector discards the partial vector, so a host that lost count waits that long and
// starts again. A vector enters the design only once it is complete, so a discarded one leaves
// no trace. A byte with a low stop bit (a framing error) is dropped and lights `error`.
//
// Timing: a vector is released to the design in the cycle after its last byte's stop bit has
// been sampled, and the buffer (one block RAM, registered reads) hands it over one feature
// every 2 cycles at most. The reply's first byte is handed to the transmitter at the first edge
// with mpc_top's out_valid high (its start bit begins there, if the line is free), and the
// bytes follow without gaps; mpc_top's result is released (out_ready) at the edge that hands
// over the last byte. So a vector costs the line time of its bytes both ways plus the design's
// latency plus about N_IN cycles (the buffer's pace); with the host's window full, vectors
// follow one another at the pace of the busier direction of the line. A power-on reset (a counter with an initial value,
// which FPGA bitstreams and simulators honour) holds everything for 15 cycles.
//
// Status: `busy` is high while a vector is being received, processed or answered; `error` is
// sticky (until the next power-on) after a framing error, a discarded vector, or a ROM fault of
// the design: mpc_top's `fault` output (sticky until its reset, the power-on reset here), high
// once a protected weight ROM word was read with an uncorrectable error (docs/fixed-point.md
// "Protected ROMs"; replies keep coming, but their values are then not to be trusted). A
// design built without ROM protection holds fault low. mpc_top must have the fault port.
`default_nettype none
/* verilator lint_off DECLFILENAME */
module mpc_serial_top #(
    parameter N_IN         = 64,      // features per vector (mpc_top's stream elements)
    parameter IN_BITS      = 8,       // mpc_top's in_data width
    parameter N_CLASSES    = 10,
    parameter LOGIT_BITS   = 16,      // one logit of mpc_top's out_logits
    parameter CLASS_BITS   = 4,       // mpc_top's out_argmax width
    parameter CLKS_PER_BIT = 104,     // clock / baud, at least 4: 104 = 115200 baud at 12 MHz
    parameter FIFO_VECTORS = 2,       // whole vectors the input buffer holds (1 or 2)
    parameter IDLE_BITS    = 2048     // a pause this long (bit times) inside a vector discards it
) (
    input  wire clk,
    input  wire rx,                   // UART from the host
    output wire tx,                   // UART to the host
    output wire busy,                 // status LED
    output wire error                 // status LED (sticky)
);
/* verilator lint_on DECLFILENAME */
    localparam IN_BYTES    = (IN_BITS + 7) / 8;
    localparam LOGIT_BYTES = (LOGIT_BITS + 7) / 8;
    localparam CLASS_BYTES = (CLASS_BITS + 7) / 8;
    localparam DEPTH       = FIFO_VECTORS * N_IN;                 // buffer entries (features)
    localparam AW          = (DEPTH > 1) ? $clog2(DEPTH) : 1;     // buffer address
    localparam CW          = $clog2(DEPTH + 1);                   // entry counts 0..DEPTH
    localparam FW          = (N_IN > 1) ? $clog2(N_IN) : 1;       // feature within a vector
    localparam BW          = (IN_BYTES > 1) ? $clog2(IN_BYTES) : 1;
    localparam ITEM_BYTES  = (CLASS_BYTES > LOGIT_BYTES) ? CLASS_BYTES : LOGIT_BYTES;
    localparam JW          = (ITEM_BYTES > 1) ? $clog2(ITEM_BYTES) : 1;  // byte within an item
    localparam KW          = (N_CLASSES > 1) ? $clog2(N_CLASSES) : 1;    // logit index
    localparam IDLE_CYCLES = IDLE_BITS * CLKS_PER_BIT;
    localparam TW          = $clog2(IDLE_CYCLES + 1);
    // Constants, sliced to their counters' widths.
    localparam [31:0] LAST_BYTE_32 = IN_BYTES - 1, LAST_FEAT_32 = N_IN - 1, LAST_ADDR_32 = DEPTH - 1,
                      DEPTH_32 = DEPTH, N_IN_32 = N_IN, LAST_CLASS_32 = N_CLASSES - 1,
                      CLASS_END_32 = CLASS_BYTES - 1, LOGIT_END_32 = LOGIT_BYTES - 1,
                      IDLE_32 = IDLE_CYCLES, ONE_32 = 1;
    localparam [BW-1:0] LAST_BYTE = LAST_BYTE_32[BW-1:0];
    localparam [FW-1:0] LAST_FEAT = LAST_FEAT_32[FW-1:0];
    localparam [AW-1:0] LAST_ADDR = LAST_ADDR_32[AW-1:0];
    localparam [CW-1:0] FULL      = DEPTH_32[CW-1:0];
    localparam [CW-1:0] VECTOR    = N_IN_32[CW-1:0];
    localparam [CW-1:0] ONE       = ONE_32[CW-1:0];
    localparam [CW-1:0] ZERO      = 0;
    localparam [KW-1:0] LAST_CLASS = LAST_CLASS_32[KW-1:0];
    localparam [JW-1:0] CLASS_END = CLASS_END_32[JW-1:0];
    localparam [JW-1:0] LOGIT_END = LOGIT_END_32[JW-1:0];
    localparam [TW-1:0] IDLE_END  = IDLE_32[TW-1:0];

    // ---------------------------------------------------------------- power-on reset
    // An initial value: iCE40 and Xilinx flip-flops take it from the bitstream, simulators at
    // time 0. rst is high until the counter saturates.
    reg  [3:0] por_count;
    wire       rst = !(&por_count);
    initial por_count = 4'd0;
    always @(posedge clk) begin
        if (rst) por_count <= por_count + 1'b1;
    end

    // ---------------------------------------------------------------- receive: bytes -> features
    wire       rx_valid, rx_error;
    wire [7:0] rx_byte;
    uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk(clk), .rst(rst), .rx(rx),
        .out_valid(rx_valid), .out_data(rx_byte), .frame_error(rx_error)
    );

    reg  [BW-1:0] byte_idx;           // byte of the feature being received
    reg  [FW-1:0] feat_idx;           // feature of the vector being received
    reg  [TW-1:0] idle;               // cycles without a byte inside a vector
    wire receiving = (byte_idx != 0) || (feat_idx != 0);
    wire timeout   = receiving && !rx_valid && (idle == IDLE_END);
    wire feat_done = rx_valid && (byte_idx == LAST_BYTE);
    wire vec_done  = feat_done && (feat_idx == LAST_FEAT);
    wire [IN_BITS-1:0] feature;

    generate
        if (IN_BYTES == 1) begin : g_one_byte
            assign feature = rx_byte[IN_BITS-1:0];
            if (IN_BITS < 8) begin : g_narrow
                wire unused_pad = ^rx_byte[7:IN_BITS];
            end
        end else begin : g_bytes
            reg  [(IN_BYTES-1)*8-1:0] low;        // the feature's earlier bytes, the first lowest
            wire [IN_BYTES*8-1:0]     word = {rx_byte, low};
            assign feature = word[IN_BITS-1:0];
            if (IN_BITS < IN_BYTES * 8) begin : g_pad
                wire unused_pad = ^word[IN_BYTES*8-1:IN_BITS];
            end
            always @(posedge clk) begin
                if (rx_valid) low <= word[IN_BYTES*8-1:8];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst || rx_valid || !receiving) idle <= 0;
        else if (idle != IDLE_END) idle <= idle + 1'b1;
    end

    // ---------------------------------------------------------------- the input buffer
    // A ring of DEPTH features: [rd_addr, vec_addr) complete vectors, ready for the design;
    // [vec_addr, wr_addr) the vector being received, released when its last feature arrives.
    reg [IN_BITS-1:0] mem [0:DEPTH-1];
    reg [AW-1:0]      wr_addr, vec_addr, rd_addr;
    reg [CW-1:0]      ready_count;        // features of complete vectors not yet read
    reg [CW-1:0]      part_count;         // features of the vector being received, stored
    reg               dropping;           // that vector found the buffer full: discard it
    reg               err;

    wire full     = (ready_count + part_count == FULL);
    wire store    = feat_done && !dropping && !full;
    wire overflow = feat_done && !dropping && full;
    wire commit   = vec_done && store;
    wire rollback = timeout || (vec_done && !store);

    always @(posedge clk) begin
        if (store) mem[wr_addr] <= feature;
    end

    always @(posedge clk) begin
        if (rst) begin
            byte_idx   <= 0;
            feat_idx   <= 0;
            dropping   <= 1'b0;
            wr_addr    <= 0;
            vec_addr   <= 0;
            part_count <= 0;
        end else if (timeout) begin
            byte_idx   <= 0;
            feat_idx   <= 0;
            dropping   <= 1'b0;
            wr_addr    <= vec_addr;
            part_count <= 0;
        end else begin
            if (rx_valid) byte_idx <= (byte_idx == LAST_BYTE) ? 0 : byte_idx + 1'b1;
            if (feat_done) feat_idx <= (feat_idx == LAST_FEAT) ? 0 : feat_idx + 1'b1;
            if (overflow) dropping <= 1'b1;
            if (vec_done) dropping <= 1'b0;
            if (commit) begin
                wr_addr    <= (wr_addr == LAST_ADDR) ? 0 : wr_addr + 1'b1;
                vec_addr   <= (wr_addr == LAST_ADDR) ? 0 : wr_addr + 1'b1;
                part_count <= 0;
            end else if (rollback) begin
                wr_addr    <= vec_addr;
                part_count <= 0;
            end else if (store) begin
                wr_addr    <= (wr_addr == LAST_ADDR) ? 0 : wr_addr + 1'b1;
                part_count <= part_count + 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- buffer -> mpc_top
    // A registered read (block RAM): `pend` the cycle after a read, then the feature is held
    // on in_word with `have` until mpc_top takes it.
    reg  [IN_BITS-1:0] in_word;
    reg                pend, have;
    wire               in_ready;
    wire               take = have && in_ready;
    wire               read = (ready_count != 0) && !pend && (!have || take);

    always @(posedge clk) begin
        if (read) in_word <= mem[rd_addr];
    end

    always @(posedge clk) begin
        if (rst) begin
            rd_addr     <= 0;
            ready_count <= 0;
            pend        <= 1'b0;
            have        <= 1'b0;
        end else begin
            if (read) rd_addr <= (rd_addr == LAST_ADDR) ? 0 : rd_addr + 1'b1;
            ready_count <= ready_count + (commit ? VECTOR : ZERO) - (read ? ONE : ZERO);
            pend        <= read;
            have        <= pend || (have && !take);
        end
    end

    wire                            out_valid, out_ready;
    wire [N_CLASSES*LOGIT_BITS-1:0] out_logits;
    wire [CLASS_BITS-1:0]           out_argmax;
    wire                            design_fault;     // sticky ROM fault (until rst)

    mpc_top u_design (
        .clk(clk), .rst(rst),
        .in_valid(have), .in_ready(in_ready), .in_data(in_word),
        .out_valid(out_valid), .out_ready(out_ready), .out_logits(out_logits), .out_argmax(out_argmax),
        .fault(design_fault)
    );

    // ---------------------------------------------------------------- reply: result -> bytes
    // mpc_top holds its result until out_ready; the reply's bytes are read from it in place:
    // the item (the class, or logit `logit_idx`), then byte `byte_out` of it.
    reg                  on_class;     // sending the class (else a logit)
    reg  [KW-1:0]        logit_idx;
    reg  [JW-1:0]        byte_out;     // byte within the class or the logit
    wire [LOGIT_BITS-1:0] logit = out_logits[logit_idx*LOGIT_BITS +: LOGIT_BITS];
    wire [ITEM_BYTES*8-1:0] class_word, logit_word;

    generate
        if (ITEM_BYTES * 8 > CLASS_BITS) begin : g_class_pad
            assign class_word = {{(ITEM_BYTES*8 - CLASS_BITS){1'b0}}, out_argmax};
        end else begin : g_class
            assign class_word = out_argmax;
        end
        if (ITEM_BYTES * 8 > LOGIT_BITS) begin : g_logit_sign
            assign logit_word = {{(ITEM_BYTES*8 - LOGIT_BITS){logit[LOGIT_BITS-1]}}, logit};
        end else begin : g_logit
            assign logit_word = logit;
        end
    endgenerate

    wire       tx_ready, tx_active;
    wire       tx_take    = out_valid && tx_ready;
    wire       item_end   = on_class ? (byte_out == CLASS_END) : (byte_out == LOGIT_END);
    wire       last_out   = !on_class && (logit_idx == LAST_CLASS) && (byte_out == LOGIT_END);
    wire [7:0] tx_byte    = on_class ? class_word[byte_out*8 +: 8] : logit_word[byte_out*8 +: 8];
    assign out_ready = tx_take && last_out;

    uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk(clk), .rst(rst),
        .in_valid(out_valid), .in_ready(tx_ready), .in_data(tx_byte),
        .tx(tx), .active(tx_active)
    );

    always @(posedge clk) begin
        if (rst) begin
            on_class  <= 1'b1;
            logit_idx <= 0;
            byte_out  <= 0;
        end else if (tx_take) begin
            byte_out <= item_end ? 0 : byte_out + 1'b1;
            if (item_end) begin
                on_class  <= last_out;
                logit_idx <= (on_class || last_out) ? 0 : logit_idx + 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- status
    reg [7:0] in_flight;              // complete vectors whose reply is not yet all handed over
    always @(posedge clk) begin
        if (rst) begin
            in_flight <= 0;
            err       <= 1'b0;
        end else begin
            if (commit && !out_ready) in_flight <= in_flight + 1'b1;
            else if (out_ready && !commit) in_flight <= in_flight - 1'b1;
            if (rx_error || overflow) err <= 1'b1;
        end
    end
    assign busy  = receiving || (in_flight != 0) || tx_active;
    assign error = err || design_fault;
endmodule
`default_nettype wire
