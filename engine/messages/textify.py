"""The text alternative of an HTML email: readable paragraphs, links as 'text (url)'.

Regular expressions rather than an HTML parser: this runs once per message, and email HTML
from our own templates is well-formed enough for it.
"""

from __future__ import annotations

import html
import re

_DROP = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# Comments (Outlook's conditional ones hold its ghost tables and button spacers) and elements
# hidden with display:none (an email's preheader, shown only in the inbox list). The hidden
# element must not hold another of its kind: a preheader never does.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HIDDEN = re.compile(
    r"<(div|span|p)\b[^>]*\bstyle\s*=\s*[\"'][^\"']*display\s*:\s*none[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_LINK = re.compile(r"<a\b[^>]*?href\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)
_BLOCK = re.compile(r"</?(p|div|h[1-6]|tr|table|ul|ol|section|header|footer|blockquote|hr|li)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_GAPS = re.compile(r"\n{3,}")


def _link(match: re.Match) -> str:
    href, text = match.group(2), match.group(3)
    if href.startswith(("#", "mailto:")):
        return text
    return f"{text} ({href})"


def html_to_text(markup: str) -> str:
    text = _DROP.sub("", _HIDDEN.sub("", _COMMENT.sub("", markup)))
    text = _WHITESPACE.sub(" ", text)
    text = _LINK.sub(_link, text)
    text = _BREAK.sub("\n", text)
    text = _ITEM.sub("\n\n- ", text)
    text = _BLOCK.sub("\n\n", text)
    text = html.unescape(_TAG.sub("", text))
    # Runs of spaces never cross a newline: one pass over the whole text, then trim each line.
    lines = [line.strip() for line in _SPACES.sub(" ", text).split("\n")]
    return _GAPS.sub("\n\n", "\n".join(lines)).strip() + "\n"
