"""mpc: a hardware-aware compression compiler (docs/architecture.md)."""

from compiler import hw
