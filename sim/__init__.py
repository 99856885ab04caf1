"""cocotb testbenches and the host-side runner that builds and simulates the RTL."""
