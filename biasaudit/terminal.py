"""Text that reaches the terminal: whatever comes from input (corpus text, document ids, file names, test and word
names, error messages quoting them) is printed through ``clean``, so escape sequences in a corpus cannot retitle
the terminal, clear it or hide output, and rich markup in a document id cannot restyle the rest of the line."""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls; bidirectional overrides and isolates (text that reads one way
# and runs another); zero-width characters that hide text
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")   # file-name bytes that are not UTF-8; nothing a terminal can show


def strip_controls(text: object, newlines: bool = True) -> str:
    """``text`` without control characters (each becomes a space); ``newlines=False`` turns line breaks and tabs
    into spaces too (one-line output)."""
    s = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", str(text)))
    return s if newlines else re.sub(r"[\t\n]", " ", s)


def clean(text: object, newlines: bool = False) -> str:
    """Printable and markup-free: control characters stripped, rich markup escaped."""
    from rich.markup import escape
    return escape(strip_controls(text, newlines))
