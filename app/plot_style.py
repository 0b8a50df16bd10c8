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
# Story mode's one curve, beside the heatmaps, is narrower: ~265 px at 1280 px (app/curves.py,
# FOCUS_MIN_WIDTH 250), ~190 px of it beside the y axis. Its title (12pt bold, ~7.7 px a character)
# and subtitle then go on lines of these many characters.
FOCUS_TITLE_CHARS, FOCUS_SUBTITLE_CHARS = 24, 30
# Where a phrase too long for its line may break: after a comma (not one inside brackets, as in
# ∠(δ, δ_BP)), or before " (" or " vs ".
_INNER_BREAK = re.compile(r"(?<=,) (?![^(]*\))| (?=\()| (?=vs )")


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


def narrow_lines(text: str, width: int) -> str:
    """`text` on lines of at most `width` characters for a narrow plot: between phrases as
    `phrase_lines` breaks it, then a line still too long after a comma or before " (" or " vs ",
    and between words only where a piece is still too long."""
    lines: list[str] = []
    for line in phrase_lines(text, width).split("\n"):
        pieces = [p for piece in _INNER_BREAK.split(line)
                  for p in ([piece] if len(piece) <= width else piece.split(" "))]
        lines.append(pieces[0])
        for piece in pieces[1:]:
            if len(lines[-1]) + 1 + len(piece) <= width:
                lines[-1] += " " + piece
            else:
                lines.append(piece)
    return "\n".join(lines)


def subtitle_model(text: str) -> Title:
    """A subtitle (see `subtitle`), not yet on a plot."""
    return Title(text=text, text_font_size=FONT["subtitle"], text_font_style="italic", text_color="#444444")


def subtitle(fig, text: str) -> Title:
    """A second, smaller title under the plot's title (what a good value is); a "\\n" in `text`
    starts a new line."""
    sub = subtitle_model(text)
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
