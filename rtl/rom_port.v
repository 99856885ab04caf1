// rom_port: one weight-engine ROM: the memory ($readmemh of FILE), its read(s) and the decoder
// (rtl/rom_check.v) after each. Every ROM of dense_mac, sparse_mac, circulant_mac (and its
// circulant_butterfly) and conv2d is one of these, so the stored word width is defined here
// and only here.
//
// Stored words (kernels.rom.write_mem(..., protection, lanes); kernels/rom_protect.py): DATA_BITS
// data bits, low, then LANES * CHECK_BITS check bits, CHECK_BITS the check bits of one lane of
// L = DATA_BITS / LANES data bits (kernels.rom_protect.check_bits):
//   PROTECT 0: 0;  PROTECT 1 (even parity): 1;
//   PROTECT 2 (SECDED): R + 1, R = $clog2(L + 1 + $clog2(L + 1)) (the smallest R with
//     2**R >= L + R + 1: Hamming bits) plus the overall parity bit.
// This is the one place the width is written: rom_check gets it as its CHECK_BITS parameter.
//
// Reads: PORTS read ports, port p at address addr[p*ADDR_BITS +: ADDR_BITS], its decoded word
// at data[p*DATA_BITS +: DATA_BITS] with its corrected / detected flags (rom_check's contract).
//   REGISTERED = 1: the codeword is registered at the clock edge where `en` is high (block-RAM
//     style; the engines' stalls hold it) and decoded combinationally after the register: the
//     data is that of the address of the last enabled edge, no cycle added by the decoder.
//   REGISTERED = 0: combinational read and decode (clk and en unused).
// An address past DEPTH reads what the memory holds there (x in simulation), as an inline
// memory would; the engines never use such a word.
`default_nettype none
module rom_port #(
    parameter DEPTH      = 1,
    parameter DATA_BITS  = 8,
    parameter PROTECT    = 0,         // 0 none, 1 even parity, 2 SECDED
    parameter LANES      = 1,         // codes per word (DATA_BITS % LANES == 0)
    parameter PORTS      = 1,         // read ports
    parameter REGISTERED = 1,         // 1: registered read (enabled by en); 0: combinational
    parameter ADDR_BITS  = (DEPTH > 1) ? $clog2(DEPTH) : 1,
    parameter FILE       = "rom.mem"
) (clk, en, addr, data, corrected, detected);
    localparam L          = DATA_BITS / LANES;
    localparam CHECK_BITS = (PROTECT == 2) ? $clog2(L + 1 + $clog2(L + 1)) + 1 : (PROTECT == 1) ? 1 : 0;
    localparam CODE_BITS  = DATA_BITS + LANES * CHECK_BITS;

    input  wire                           clk;
    input  wire                           en;
    input  wire [PORTS*ADDR_BITS-1:0]     addr;
    output wire [PORTS*DATA_BITS-1:0]     data;
    output wire [PORTS-1:0]               corrected;
    output wire [PORTS-1:0]               detected;

    reg [CODE_BITS-1:0] rom [0:DEPTH-1];      // codewords (PROTECT = 0: the words)

    initial $readmemh(FILE, rom);

    genvar p;
    generate
        for (p = 0; p < PORTS; p = p + 1) begin : g_port
            wire [ADDR_BITS-1:0] port_addr = addr[p*ADDR_BITS +: ADDR_BITS];
            wire [CODE_BITS-1:0] code;
            if (REGISTERED != 0) begin : g_registered
                reg [CODE_BITS-1:0] code_q;
                always @(posedge clk) begin
                    if (en) code_q <= rom[port_addr];
                end
                assign code = code_q;
            end else begin : g_comb
                assign code = rom[port_addr];
            end
            rom_check #(.DATA_BITS(DATA_BITS), .PROTECT(PROTECT), .LANES(LANES), .CHECK_BITS(CHECK_BITS)) u_check (
                .code(code), .data(data[p*DATA_BITS +: DATA_BITS]),
                .corrected(corrected[p]), .detected(detected[p])
            );
        end
        if (REGISTERED == 0) begin : g_unused_clock
            wire unused_clock = clk ^ en;
        end
    endgenerate
endmodule
`default_nettype wire
