"""Text from a script or a model, made safe to show on a terminal.

A terminal obeys control characters: ESC sequences move the cursor, change the window title, leave
the alternate screen under a running app (`ESC[?1049l`), or write the clipboard (OSC 52); C1 bytes
such as U+009B are the same sequences in one character; a carriage return lets a line hide what came
before it. Textual's `Log` drops only U+0000..U+0014, and a headless session prints to the terminal
directly. So every text a script or a model wrote passes through `sanitize` before anything shows it:
newline and tab stay, CR LF becomes LF, and every other control character becomes a visible
placeholder, the Unicode "control picture" for C0 (`␛` for ESC, `␇` for BEL, `␍` for a lone CR), `␡`
for DEL, and `<U+009B>` for C1, for the bidirectional overrides, isolates and marks (which reorder what
a reviewer reads: "Trojan Source"; U+200E, U+200F and U+061C flip neutral characters as well), and
for the characters that are invisible or break a line where the reader sees none (U+200B, U+2060 and
U+FEFF hide a difference between two look-alike texts; U+2028 and U+2029 start a new line in some
terminals and editors and not in others). The joiners U+200C and U+200D stay: emoji and several
scripts need them. The rest of an escape sequence is printable already and stays, so the reader sees
what the script tried to do.

It is idempotent (placeholders are printable), so text that is sanitized where it is captured and
again where it is shown comes out the same. What is stored in the dataset is never sanitized: model
text is training data.
"""

from __future__ import annotations

import re

_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_INVISIBLE = "\u200b\u2060\ufeff\u2028\u2029"
_UNSAFE = re.compile(f"\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}]")


def _placeholder(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r\n":
        return "\n"
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"<U+{code:04X}>"


def sanitize(text: str) -> str:
    """`text` with every control character but newline and tab replaced by a visible placeholder."""
    return _UNSAFE.sub(_placeholder, text)


def is_safe(text: str) -> bool:
    """True when `text` holds no character `sanitize` would replace."""
    return _UNSAFE.search(text) is None
