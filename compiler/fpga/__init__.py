"""FPGA devices and the open iCE40 flow: fitting, place and route, timing, bitstream (docs/fpga.md)."""
