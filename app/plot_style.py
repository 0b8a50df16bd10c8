"""The look every dashboard plot shares: font sizes legible on a projector, and a subtitle line."""

from __future__ import annotations

from bokeh.models import Title

FONT = {"title": "12pt", "heatmap_title": "11pt", "subtitle": "10pt", "axis": "11pt",
        "ticks": "10pt", "legend": "9pt"}


def subtitle(fig, text: str) -> Title:
    """A second, smaller title line under the plot's title (what a good value is)."""
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
