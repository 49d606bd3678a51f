"""The costly steps after Jinja — CSS inlining, the text part — done once for every recipient of
content that differs only in each recipient's own links (unsubscribe, preferences): a newsletter.

The links are taken out (each replaced by a marker), the step runs on what is left, or its
result is found among the last few, and the links are put back. This gives exactly what the step
gives on the message itself, because a step treats a marker as it treats the link it stands for:
only plain http(s) links are taken out — no `&`, quote, `<` or `>`, nothing an HTML writer
escapes or a reader unescapes — and neither step looks at how long a piece of text is.
Personal content (a name, a coupon code) differs anyway: it runs the step, as before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping

MARK = "nudge-own-link-"
_PLAIN = re.compile(r"https?://[A-Za-z0-9:/?=._~%+,;@!$*()\[\]-]+")
RECENT = 32  # results kept per process: a batch's newsletter, in each of its locales and variants
NAMES = ("unsubscribe_url", "preferences_url")  # a template's own links, as links() names them

Step = Callable[[str], str]


def without_own_links(step: Step, markup: str, links: Mapping[str, str]) -> str:
    """step(markup), run once for all markups that are the same but for `links`."""
    urls = sorted({url for url in links.values() if url and url in markup}, key=len, reverse=True)
    if not urls or MARK in markup or not all(_PLAIN.fullmatch(url) for url in urls):
        return step(markup)
    # Longest first: a link that is part of another must not break the other's marker.
    for number, url in enumerate(urls):
        markup = markup.replace(url, f"{MARK}{number}-")
    done = _recent(step, markup)
    for number, url in enumerate(urls):
        done = done.replace(f"{MARK}{number}-", url)
    return done


def own_links(context: Mapping[str, object]) -> dict[str, str]:
    """The recipient's own links in a template's context."""
    return {name: url for name in NAMES if isinstance(url := context.get(name), str)}


@functools.lru_cache(maxsize=RECENT)
def _recent(step: Step, markup: str) -> str:
    return step(markup)
