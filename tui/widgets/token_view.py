"""A chosen output with each token coloured by the teacher's probability for it.

Why a picture: where a teacher was sure (dark green) and where it hesitated (red) is what decides
whether a row's soft labels teach the student anything, and it is seen at a glance where a column of
numbers would have to be read. Colours come from the theme: `error` for probability 0, `success`
for 1, blended in between.
"""

from __future__ import annotations

import codecs
import math

from rich.style import Style
from rich.text import Text
from textual.color import Color

from engine.execution.sanitize import sanitize
from engine.logprobs import TokenLogprobs


def probability_text(lp: TokenLogprobs, low: Color, high: Color) -> Text:
    """The tokens in order (bytes decoded across token boundaries), each on its colour."""
    text = Text()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for piece, logprob in zip(lp.token_bytes, lp.logprobs.tolist()):
        chunk = decoder.decode(piece)
        if not chunk:
            continue  # half a character: it shows with the token that completes it
        p = math.exp(logprob) if math.isfinite(logprob) else 0.0
        background = low.blend(high, max(0.0, min(1.0, p)))
        style = Style(bgcolor=background.rich_color, color=background.get_contrast_text(1.0).rich_color)
        text.append(sanitize(chunk), style=style)
    text.append(decoder.decode(b"", final=True))
    return text


def legend(low: Color, high: Color) -> Text:
    out = Text("teacher probability: ")
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        colour = low.blend(high, p)
        out.append(f" {p:.2f} ", style=Style(bgcolor=colour.rich_color, color=colour.get_contrast_text(1.0).rich_color))
    return out
