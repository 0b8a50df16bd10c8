"""Text from outside the program, made safe for the page: it shows as the literal text, never as
markup or script.

"Outside" is whatever this code did not write itself: a link's query values, run folder names
and the files in them, sweep.json, and every message that quotes them (ConfigError, exceptions).
Each kind of place on the page takes its own helper:

- `plain`: a Select or CheckBoxGroup option label, a plot's title or legend, which Bokeh draws as
  text. Only made printable: a folder name that is not UTF-8 arrives with lone surrogates, which
  the page's JSON cannot encode (the whole document would fail to reach the browser).
- `md_text` / `md_code`: inside a Markdown or Alert pane, which renders markdown *and* raw HTML.
- `html_text`: inside an HTML pane.

A Markdown pane that shows such text is made by `text_pane`: escaping cannot stop the browser's
MathJax from typesetting `$$…$$`, nor linkify from turning a bare domain into a link.
"""

from __future__ import annotations

import html
import re
import string
from typing import Any

import panel as pn

# Markdown that can start anywhere in a line: backslash escapes, code spans, emphasis, links and
# images, entities, strikethrough, table cells.
_INLINE = set("\\`*[]&~|")
# `<` opens raw HTML, an HTML comment or an autolink only before a letter, `/`, `!` or `?`; elsewhere
# ("<= 1e+06") it is text, and left as it is so that messages read as before.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?]|$)")
# What only counts at the start of a line: an ordered list item ("1." / "1)").
_LIST_NUMBER = re.compile(r"\d{1,9}(?=[.)])")
_PUNCTUATION = set(string.punctuation)


def plain(value: Any) -> str:
    """`value` as one line of printable text: each run of whitespace (line breaks included) one
    space, and any other character that is not printable (a control character, a lone surrogate)
    written as its escape, e.g. "\\x00"."""
    text = " ".join(str(value).split())
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def md_text(value: Any) -> str:
    """`value` as markdown that renders as exactly `plain(value)`, in a paragraph or mid-line.

    Only what markdown would read is backslash-escaped, so an ordinary message ("lr='nan' is not
    allowed; … <= 1e+06", "ridge_gamma=0.5") is unchanged: one line cannot open a block except at
    its start, and `_` between two letters or digits never emphasises."""
    text = plain(value)
    out = []
    for i, c in enumerate(text):
        intraword = c == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        escape = c in _INLINE or (c == "_" and not intraword) or (c == "<" and _TAG_OPEN.match(text, i))
        out.append("\\" + c if escape else c)
    escaped = "".join(out)
    # The start of a line: a heading, quote, list, rule, setext underline, definition or table
    # begins with punctuation; an ordered list with a number and "." or ")".
    if (number := _LIST_NUMBER.match(escaped)) is not None:
        return escaped[:number.end()] + "\\" + escaped[number.end():]
    if escaped[:1] in _PUNCTUATION and not escaped.startswith("\\"):
        return "\\" + escaped
    return escaped


def md_code(value: Any) -> str:
    """`value` as a markdown code span (what a path or an id was shown in), whatever backticks it
    holds: the fence is longer than any run of them inside."""
    text = plain(value)
    if not text:
        return ""                 # (an empty span would be two literal backticks)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""      # (one space each side is dropped)
    return f"{fence}{pad}{text}{pad}{fence}"


def html_text(value: Any) -> str:
    """`value` as text inside an HTML pane (or an attribute value)."""
    return html.escape(plain(value))


def text_pane(object: str = "", pane: type[pn.pane.Markdown] = pn.pane.Markdown, **params) -> pn.pane.Markdown:
    """A Markdown pane (or Alert, a Markdown subclass) for messages that quote outside text."""
    return pane(object, disable_math=True, renderer_options={"linkify": False}, **params)


__all__ = ["plain", "md_text", "md_code", "html_text", "text_pane"]
