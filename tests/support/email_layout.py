"""Does an email keep its layout in Gmail, Yahoo and Outlook.com? They drop the `style` of <body>
and, often, <style> blocks and linked stylesheets: a layout style (width, spacing, font, colour,
background) that sits only there is lost. What may stay in the head: media queries and other
at-rules (a phone's narrower padding, dark mode), which are improvements, not the layout.

layout_problems(html) lists what sits only where those clients drop it; [] is a pass."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Properties whose loss changes how the email is laid out or reads.
LAYOUT = re.compile(
    r"^(width|max-width|min-width|margin(-\w+)?|padding(-\w+)?|font(-family|-size|-weight)?|line-height|color"
    r"|background(-color)?|text-align|border(-radius)?)$"
)
_COMMENTS = re.compile(r"/\*.*?\*/", re.DOTALL)


def declarations(style: str) -> dict[str, str]:
    """`a: b; c: d` → {a: b, c: d} (property names lower-cased)."""
    found = {}
    for part in style.split(";"):
        name, colon, value = part.partition(":")
        if colon and name.strip():
            found[name.strip().lower()] = value.strip()
    return found


def plain_rules(css: str) -> list[tuple[str, str]]:
    """(selector, declarations) of the rules outside any at-rule (@media, @font-face, …)."""
    css = _COMMENTS.sub("", css)
    rules, depth, start, at_rule = [], 0, 0, False
    for index, char in enumerate(css):
        if char == "{":
            if depth == 0:
                selector = css[start:index].strip()
                at_rule = selector.startswith("@")
                body_start = index + 1
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                if not at_rule:
                    rules.append((selector, css[body_start:index]))
                start = index + 1
        elif char == ";" and depth == 0:
            start = index + 1  # a statement at-rule such as @import url(…);
    return rules


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.body_style: dict[str, str] = {}
        self.inside: set[str] = set()  # properties set inline on elements inside <body>
        self.head_css: list[str] = []
        self.links: list[str] = []
        self.in_body = self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        style = declarations(found.get("style") or "")
        if tag == "body":
            self.in_body, self.body_style = True, style
        elif self.in_body:
            self.inside.update(style)
        if tag == "style":
            self.in_style = True
            self.head_css.append("")
        if tag == "link" and "stylesheet" in (found.get("rel") or "").lower():
            self.links.append(found.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style:
            self.head_css[-1] += data


def layout_problems(html: str) -> list[str]:
    """What in this HTML sits only on <body> or in <head> (or a linked stylesheet)."""
    reader = _Reader()
    reader.feed(html)
    problems = [
        f"<body> alone has {name}: {value}"
        for name, value in reader.body_style.items()
        if LAYOUT.match(name) and name not in reader.inside
    ]
    for css in reader.head_css:
        for selector, body in plain_rules(css):
            kept = sorted(name for name in declarations(body) if LAYOUT.match(name))
            if kept:
                problems.append(f"<style> rule {selector!r} is not inlined: {', '.join(kept)}")
    problems += [f"linked stylesheet {href!r}: mail clients do not load it" for href in reader.links]
    return problems
