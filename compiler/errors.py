"""The errors a user can act on: one leaf that every user-facing error subclasses.

The CLI prints an `MpcError`'s message as one line (exit 2), never a traceback, so no layer
has to translate another's errors. Errors raised by more than one layer live here; the rest
subclass `MpcError` in their own module. Imports nothing.
"""

from __future__ import annotations


class MpcError(Exception):
    """An error the user can act on; the CLI prints its message as one line, no traceback."""


class PassError(MpcError, ValueError):
    """A pass (or an op's lowering rule) cannot run on this graph or with these options; the
    message says which and why."""
