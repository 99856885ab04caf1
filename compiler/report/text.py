"""Text helpers of report.md: model text shown literally, percentages and numbers.

Names come from the model's author (ONNX node names, file names): they are shown, never
interpreted, so every character Markdown or a terminal would read is escaped.
"""

from __future__ import annotations

import html


def printable(text: str) -> str:
    """`text` with every character that is not printable (newlines, terminal escapes, bidi
    controls) written as a visible \\x.. / \\u.... escape: one line, shown as it is."""
    return "".join(c if c.isprintable() else _visible(c) for c in str(text))


def _visible(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


_CODE_UNSAFE = frozenset("`|<>&")  # a code span would end, split a table cell, or hold raw HTML
# what Markdown (CommonMark, GitHub's tables and math) reads inside a line; `&`, `<`, `>` become
# entities instead. The text never starts a line, so `.`, `-`, `+` and digits need nothing.
_MD_ESCAPED = frozenset("\\`*_{}[]()#!|~$")


def md_text(text: str) -> str:
    """Model text as literal Markdown inside a line: a backslash before the characters Markdown
    reads there (CommonMark lets any ASCII punctuation be escaped), `&`, `<`, `>` as HTML
    entities, no line breaks."""
    escaped = "".join("\\" + c if c in _MD_ESCAPED else c for c in printable(text))
    return html.escape(escaped, quote=False)


def md_code(text: str) -> str:
    """A name as a code span when it can be one unchanged, else as escaped text (md_text)."""
    shown = printable(text)
    if shown and shown.strip() == shown and not _CODE_UNSAFE & set(shown):
        return f"`{shown}`"
    return md_text(shown)


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def num(v, fmt: str = ",") -> str:
    return "n/a" if v is None else format(v, fmt)
