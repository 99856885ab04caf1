// mac_input: the double-buffered input loader of the ROM-streaming MAC engines (dense_mac,
// sparse_mac). It takes input vectors of N elements (streamed in index order, one per edge
// with in_valid && in_ready), packs them into words of P elements (rtl/word_pack.v; sparse_mac
// uses P = 1: a word is one element) and tells the engine where to write them; the engine
// owns the storage (dense_mac: a RAM of P-element words, sparse_mac: register arrays).
//
// Two buffers: one vector loads while the previous one is read (computed).
//   * Write side: wr_en (= the accepted element completes a word) asks the engine to write
//     wr_data to word wr_addr of buffer wr_buf at this edge. in_ready is high while the
//     buffer being loaded is free; the vector's last element marks it full and loading
//     moves to the other buffer.
//   * Read side: rd_full is high while buffer rd_buf holds a vector not yet fully read; the
//     engine raises rd_done at the edge of its last read of it (the buffer becomes free and
//     reading moves to the other buffer).
// No added latency: a vector's buffer is full from the edge after its last element, and free
// again (in_ready) from the edge after its rd_done.
`default_nettype none
module mac_input #(
    parameter N       = 4,             // elements per vector
    parameter P       = 1,             // elements per word
    parameter IN_BITS = 8
) (
    input  wire                clk,
    input  wire                rst,            // synchronous, active high
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [IN_BITS-1:0]  in_data,
    output wire                wr_en,
    output reg                 wr_buf,         // buffer being loaded
    output wire [((((N + P - 1) / P) > 1) ? $clog2((N + P - 1) / P) : 1)-1:0] wr_addr,
    output wire [P*IN_BITS-1:0] wr_data,
    output wire                rd_full,
    output reg                 rd_buf,         // buffer being read next
    input  wire                rd_done
);
    reg [1:0] full;                       // buffer holds a vector not yet fully read

    assign in_ready = !full[wr_buf];
    assign rd_full  = full[rd_buf];
    wire   accept   = in_valid && in_ready;
    wire   last_elem;

    word_pack #(.N(N), .P(P), .IN_BITS(IN_BITS)) u_pack (
        .clk(clk), .rst(rst), .accept(accept), .in_data(in_data),
        .we(wr_en), .word(wr_data), .addr(wr_addr), .last(last_elem)
    );

    always @(posedge clk) begin
        if (rst) begin
            full   <= 2'b00;
            wr_buf <= 1'b0;
            rd_buf <= 1'b0;
        end else begin
            if (accept && last_elem) begin
                full[wr_buf] <= 1'b1;
                wr_buf       <= !wr_buf;
            end
            if (rd_done) begin
                full[rd_buf] <= 1'b0;
                rd_buf       <= !rd_buf;
            end
        end
    end
endmodule
`default_nettype wire
