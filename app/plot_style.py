"""The look every dashboard plot shares: font sizes legible on a projector, and a subtitle line."""

from __future__ import annotations

import re

from bokeh.models import Title

FONT = {"title": "12pt", "heatmap_title": "11pt", "subtitle": "10pt", "axis": "11pt",
        "ticks": "10pt", "legend": "9pt"}
# A subtitle's longest line, in characters. A title is drawn on the canvas and never wraps: what
# passes the plot's edge is cut off. At 10pt italic a character is about 6.3 px, so 44 of them fit
# a 360 px curve plot (app/curves.py, CURVE_MIN_WIDTH) beside its y axis: three plots a row at 1440 px.
SUBTITLE_CHARS = 44


def phrase_lines(text: str, width: int = SUBTITLE_CHARS) -> str:
    """`text` on as few lines of at most `width` characters as its phrases allow: broken only
    where one phrase ends ("; ", or " · " before a notation), never inside one, so a notation such
    as ∠(δ, δ_BP) stays whole; a phrase longer than `width` has a line of its own."""
    pieces = re.split(r"(; | · )", text)
    lines = [pieces[0]]
    for sep, piece in zip(pieces[1::2], pieces[2::2]):
        if len(lines[-1]) + len(sep) + len(piece) <= width:
            lines[-1] += sep + piece
        else:             # a ";" stays at the end of its line; the "·" before a notation goes
            lines[-1] += sep.rstrip() if sep == "; " else ""
            lines.append(piece)
    return "\n".join(lines)


def subtitle(fig, text: str) -> Title:
    """A second, smaller title under the plot's title (what a good value is); a "\\n" in `text`
    starts a new line."""
    sub = Title(text=text, text_font_size=FONT["subtitle"], text_font_style="italic",
                text_color="#444444")
    fig.add_layout(sub, "above")
    return sub


def style_figure(fig) -> None:
    fig.title.text_font_size = FONT["title"]
    for axis in (fig.xaxis, fig.yaxis):
        axis.axis_label_text_font_size = FONT["axis"]
        axis.major_label_text_font_size = FONT["ticks"]
    fig.xaxis.ticker.desired_num_ticks = 4
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.min_border_right = 12
