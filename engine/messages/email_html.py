"""An email's body as it is sent: the template for the customer's locale, rendered with Jinja,
compiled from MJML when it is one (`.mjml.j2`), then its `<style>` rules moved into `style`
attributes (Gmail and Outlook.com drop `<style>` blocks; media queries stay in the head, where
the phones that honour them read them)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import RenderError
from engine.messages.formatting import settings_of
from engine.messages.own_links import own_links, without_own_links
from engine.messages.templates import render_file

MJML_SUFFIXES = (".mjml.j2", ".mjml")
HTML_SUFFIXES = (".html", ".htm", ".html.j2", ".htm.j2", *MJML_SUFFIXES)
# Gmail clips a message whose HTML is over about 102 KB behind "[Message clipped] View entire
# message", and the unsubscribe link at the bottom with it: validate warns before that.
CLIP_BYTES = 100 * 1024
_STYLE = re.compile(r"<style\b", re.IGNORECASE)


@dataclass(frozen=True)
class EmailBody:
    template: str  # the file rendered: the locale's variant of the one the rule names, if any
    body: str
    is_html: bool


@functools.lru_cache(maxsize=1)
def _inliner() -> Any:
    import css_inline

    # Never fetch a stylesheet a template links to: rendering must not reach the network (a
    # template could point it at an internal address), and a client would not load it either.
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    """Every `<style>` rule that can be inlined, inlined; @media and other at-rules kept in the head.
    HTML without a `<style>` block is returned as written."""
    import css_inline

    if not _STYLE.search(html):
        return html
    try:
        return str(_inliner().inline(html))
    except css_inline.InlineError as exc:
        raise RenderError(f"CSS cannot be inlined: {exc}") from None


def compile_mjml(markup: str, name: str) -> str:
    """MJML → HTML with the `mrml` library: no include is loaded (mj-include fails) and no web
    font is linked unless the template declares one with mj-font."""
    import mrml

    try:
        return str(mrml.to_html(markup, render_options=mrml.RenderOptions(fonts={})).content)
    except (OSError, ValueError) as exc:
        raise RenderError(f"{name}: MJML does not compile: {exc}") from None


def render_email_body(
    env: SandboxedEnvironment, template: str, context: Mapping[str, Any], locale: str | None
) -> EmailBody:
    """The body of an email for a customer of `locale`, as it will be sent."""
    name = env.localized_name(template, locale) if hasattr(env, "localized_name") else template
    body = render_file(env, name, context)
    if name.endswith(MJML_SUFFIXES):
        body = compile_mjml(body, name)
    is_html = name.endswith(HTML_SUFFIXES)
    if is_html and settings_of(env).inline_css:
        body = without_own_links(inline_css, body, own_links(context))
    return EmailBody(name, body, is_html)
