"""A small picture of the network: input → hidden layers → output, as boxes in a row, with two
arrows between neighbours: the forward weights W carrying activity up (a thin dark arrow to the
right) and, above every hidden layer, the feedback B carrying the error down (a thick arrow to
the left) coloured by how close that error is to backprop's.

TensorFlow Playground's strongest idea is that the network is drawn, not described. Here the
feedback arrow above hidden layer i (from layer i+1, or from the output) is where Bᵢ sends the
error down; it is coloured by the run's latest `signal_angle_deg` of layer i, the angle between
the error the layer got and the one backprop would have sent: green near 0° (the same
direction), grey near 90° (unrelated), red past 90° (opposed), light before a run's first record
or where the angle is undefined (NaN). No error goes down to the input: its link has the forward
arrow only.

It is a few hundred bytes of SVG in an HTML pane, rebuilt from the newest record once a second
by the dashboard's slow pull and sent only when what it shows changed (whole degrees), so it
costs the pull next to nothing.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import panel as pn

# The hidden layers of the conv models (engine/networks.py builds them; tests/test_plots.py checks
# that these match what it builds). Their depth and width settings are not used.
CONV_LAYERS = {"conv-small": ("conv 16", "conv 32", "full 128"),
               "conv-cifar": ("conv 96", "conv 128", "conv 256", "full 2048", "full 2048")}
ANGLE = "signal_angle_deg"          # the record's per-layer metric the colours show
MAX_SHOWN = 8                       # deeper nets: the first and last layers, "…" between
BOX_W, GAP = 74, 40                 # a layer's box and the connection between two, in px
NEUTRAL = "#e2e2e2"                 # no angle yet: lighter than 90°'s grey, so it reads as "none"
FORWARD = "#4a5063"                 # W's arrows: dark, thin and uncoloured, unlike B's
GREEN, GREY, RED = (26, 150, 65), (190, 190, 190), (215, 25, 28)
CAPTION = ("Thin dark arrows →: the forward weights W. Thick arrows ←: the error B sends each layer, "
           "coloured by its angle to backprop's error: green 0° = the same direction, grey 90° = unrelated.")
# A population's record holds its members' mean angles (engine/trainer.py): say so.
POPULATION_NOTE = " The angles are the mean of the run's {members} seeds."


def hidden_names(cfg) -> list[str]:
    """The hidden layers of the network `cfg` describes, as the picture labels them."""
    if cfg.model in CONV_LAYERS:
        return list(CONV_LAYERS[cfg.model])
    return [str(w) for w in cfg.widths()]


def hidden_layers(cfg) -> int:
    """How many hidden layers `cfg`'s network has (one curve and one B each)."""
    return len(hidden_names(cfg))


def end_names(cfg) -> tuple[str, str]:
    """The labels of the input and the output boxes."""
    from engine.data.registry import DATASETS

    spec = DATASETS.get(cfg.dataset)
    shape = getattr(spec, "image_shape", None)
    source = "input " + ("×".join(str(s) for s in shape[1:]) if shape else "")
    if cfg.model == "autoencoder":
        return source.strip(), "output = input"
    n_out = getattr(spec, "n_out", None)
    return source.strip(), f"output {n_out}" if n_out else "output"


def angle_color(angle: float | None) -> str:
    """Green at 0°, grey at 90°, red at 180°; neutral for no angle (None or NaN)."""
    if angle is None or not math.isfinite(angle):
        return NEUTRAL
    t = min(max(angle, 0.0), 180.0) / 90.0
    a, b = (GREEN, GREY) if t <= 1 else (GREY, RED)
    t = t if t <= 1 else t - 1
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def latest_angles(record: dict[str, Any] | None, n_hidden: int) -> list[float | None]:
    """Each hidden layer's angle in a run's record (None where it has none)."""
    layers = (record or {}).get("layers") or []
    out: list[float | None] = []
    for i in range(n_hidden):
        value = layers[i].get(ANGLE) if i < len(layers) else None
        out.append(float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None)
    return out


def network_svg(inputs: str, hidden: Sequence[str], output: str,
                angles: Sequence[float | None] = (), selected: int | None = None) -> str:
    """The picture: boxes for input, hidden layers and output; the connection above hidden
    layer i coloured by angles[i - 1], with its angle written on it; `selected` (1-based) marks
    the layer whose B the heatmaps show."""
    boxes = [(inputs, None)] + [(name, i) for i, name in enumerate(hidden, start=1)] + [(output, None)]
    if len(hidden) > MAX_SHOWN:           # keep it legible: the first three, …, the last three
        half = 3
        boxes = boxes[:half + 1] + [("…", -1)] + boxes[-(half + 1):]
    box_w, gap, h, top = BOX_W, GAP, 30, 22
    width = len(boxes) * box_w + (len(boxes) - 1) * gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {top + h + 4}" '
             f'width="100%" style="max-width:{width}px;font-family:sans-serif" role="img" '
             f'aria-label="network picture">']
    for k, (name, layer) in enumerate(boxes):
        x = k * (box_w + gap)
        if k + 1 < len(boxes):           # to the next box: W up; above a hidden layer, its B down
            carries = layer is not None and layer > 0
            angle = angles[layer - 1] if carries and layer - 1 < len(angles) else None
            x0, x1 = x + box_w, x + box_w + gap
            parts.append(_arrow(x0, x1, top + h * 0.28, FORWARD, 2, 5))
            if carries:
                y = top + h * 0.68
                if layer == selected:
                    parts.append(_arrow(x1, x0, y, "#222", 10, 9))
                parts.append(_arrow(x1, x0, y, angle_color(angle), 6, 7))
                label = f"{angle:.0f}°" if angle is not None else "–"
                parts.append(f'<text x="{(x0 + x1) / 2}" y="{top - 6}" font-size="12" '
                             f'text-anchor="middle" fill="#333">{label}</text>')
        fill = "#eef2f7" if layer is None else "#ffffff"
        parts.append(f'<rect x="{x}" y="{top}" width="{box_w}" height="{h}" rx="5" fill="{fill}" '
                     f'stroke="#667" stroke-width="1.2"/>')
        parts.append(f'<text x="{x + box_w / 2}" y="{top + h / 2 + 4}" font-size="12" '
                     f'text-anchor="middle" fill="#222">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _arrow(start: float, end: float, y: float, color: str, width: float, head: float) -> str:
    """A horizontal arrow from x = start to x = end (either way), its head at `end`."""
    way = 1 if end > start else -1
    base = end - way * head * 1.4
    return (f'<line x1="{start}" y1="{y}" x2="{base}" y2="{y}" stroke="{color}" stroke-width="{width}"/>'
            f'<polygon points="{end},{y} {base},{y - head} {base},{y + head}" fill="{color}"/>')


def _width(n_hidden: int) -> int:
    """The picture's natural width in px (its viewBox), for `n_hidden` hidden layers."""
    n = (3 + 1 + 3 if n_hidden > MAX_SHOWN else n_hidden) + 2      # (…) and the two ends
    return n * BOX_W + (n - 1) * GAP


class NetworkView:
    """The picture as an HTML pane (`pane`): the set-up's network before a run, the current
    run's once started, recoloured by `show_record`."""

    def __init__(self, **params):
        params.setdefault("margin", (0, 10))
        params.setdefault("sizing_mode", "stretch_width")
        self.pane = pn.pane.HTML("", css_classes=["creditlab-network"], **params)
        self._shape: tuple[str, tuple[str, ...], str] = ("input", (), "output")
        self._angles: tuple = ()
        self._selected: int | None = None
        self._members = 1
        self._drawn = None

    def show_config(self, cfg) -> None:
        """Draw `cfg`'s network, uncoloured (no run, or a run that has sent no record yet)."""
        inputs, output = end_names(cfg)
        self._shape = (inputs, tuple(hidden_names(cfg)), output)
        self._angles = ()
        self._members = 1
        self._draw()

    def show_record(self, record: dict[str, Any] | None, selected: int | None = None,
                    members: int = 1) -> None:
        """Colour the connections by a record's angles (whole degrees); `selected`: the layer
        the heatmaps show; `members`: the run's seeds (a population's record holds their mean)."""
        angles = latest_angles(record, len(self._shape[1]))
        self._angles = tuple(None if a is None else round(a) for a in angles)
        self._selected = selected or len(self._shape[1])        # 0 / None: the top layer
        self._members = members
        self._draw()

    def _draw(self) -> None:
        drawn = (self._shape, self._angles, self._selected, self._members)
        if drawn == self._drawn:          # unchanged: send nothing
            return
        self._drawn = drawn
        inputs, hidden, output = self._shape
        svg = network_svg(inputs, hidden, output, self._angles, self._selected)
        caption = CAPTION + (POPULATION_NOTE.format(members=self._members) if self._members > 1 else "")
        # The caption beside the picture, not under it: the heatmaps must stay on a 720 px screen.
        self.pane.object = (f'<div style="display:flex;flex-wrap:wrap;align-items:center;gap:4px 16px">'
                            f'<div style="flex:0 1 {_width(len(hidden))}px;min-width:260px">{svg}</div>'
                            f'<div style="flex:1 1 220px;font-size:0.9em;color:#444;line-height:1.3">'
                            f'{html.escape(caption)}</div></div>')


__all__ = ["NetworkView", "hidden_layers", "hidden_names", "network_svg", "angle_color", "CONV_LAYERS"]
