"""The words and the frame of the pages customers see on `nudge serve` (preference centre,
confirmation), in English and Simplified Chinese: one dict of strings per language, one layout."""

from __future__ import annotations

from html import escape

from werkzeug.wrappers import Response

EN = "en"
ZH_CN = "zh-CN"

STRINGS: dict[str, dict[str, str]] = {
    EN: {
        "title": "Email preferences",
        "intro": "Choose what we send to {address}.",
        "required": "Always sent: this cannot be turned off",
        "save": "Save my choices",
        "everything": "Unsubscribe from everything",
        "saved": "Your choices are saved.",
        "left_all": "You are unsubscribed from all our marketing email.",
        "unsubscribed": "You are unsubscribed from all our marketing email. "
        "Tick a topic and save to hear from us again.",
        "left_topic": "You will no longer receive “{topic}” from us.",
        "change": "Change your email preferences",
        "implicit": "News and offers from the shop",
        "bad_title": "This link is not valid",
        "bad": "This link is not valid, or it has expired. Use the link in a more recent email from us, "
        "or reply to that email and we will help.",
        "gone_title": "Nothing to change",
        "gone": "We no longer hold any data for this link.",
        "confirm_title": "Confirm your email address",
        "confirm_intro": "Please confirm that {address} is your address and that you want to hear from us.",
        "confirm": "Confirm my address",
        "confirmed": "Thank you: {address} is confirmed.",
        "already": "This address is already confirmed. Thank you!",
        "moved": "This link was sent to an address that is no longer on your account, so it confirms nothing.",
    },
    ZH_CN: {
        "title": "邮件偏好设置",
        "intro": "请选择我们发送到 {address} 的邮件。",
        "required": "始终发送，无法关闭",
        "save": "保存我的选择",
        "everything": "退订所有邮件",
        "saved": "您的选择已保存。",
        "left_all": "您已退订我们所有的营销邮件。",
        "unsubscribed": "您已退订我们所有的营销邮件。勾选主题并保存，即可重新收到我们的邮件。",
        "left_topic": "您将不会再收到我们的“{topic}”。",
        "change": "更改邮件偏好设置",
        "implicit": "店铺资讯与优惠",
        "bad_title": "此链接无效",
        "bad": "此链接无效或已过期。请使用我们最近一封邮件中的链接，或直接回复该邮件，我们会为您处理。",
        "gone_title": "无需更改",
        "gone": "我们已不再保存与此链接相关的任何数据。",
        "confirm_title": "确认您的电子邮件地址",
        "confirm_intro": "请确认 {address} 是您的地址，并且您愿意收到我们的邮件。",
        "confirm": "确认我的地址",
        "confirmed": "谢谢！{address} 已确认。",
        "already": "此地址已经确认过了，谢谢！",
        "moved": "此链接发送到的地址已不在您的账户中，因此无法确认。",
    },
}

_LAYOUT = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, "PingFang SC", "Noto Sans CJK SC",
  "Microsoft YaHei", sans-serif; background: #f4f4f6; color: #222; margin: 0; }}
main {{ max-width: 520px; margin: 48px auto; background: #fff; border-radius: 8px; padding: 32px;
  box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
h1 {{ font-size: 22px; margin: 0 0 12px; }}
.notice {{ background: #e8f5e9; border: 1px solid #a5d6a7; border-radius: 6px; padding: 10px 14px; }}
.topic {{ display: block; padding: 12px 0; border-bottom: 1px solid #eee; font-size: 16px; }}
.topic input {{ width: 18px; height: 18px; margin-right: 10px; vertical-align: -3px; }}
.topic small {{ display: block; color: #777; margin: 2px 0 0 36px; font-size: 13px; }}
.actions {{ margin-top: 24px; display: flex; gap: 12px; flex-wrap: wrap; }}
button {{ font-size: 15px; padding: 10px 18px; border-radius: 6px; cursor: pointer; }}
.primary {{ background: #1a73e8; color: #fff; border: 1px solid #1a73e8; }}
.secondary {{ background: #fff; color: #b3261e; border: 1px solid #b3261e; }}
</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""

# A page that stands for one customer: never cached or indexed, no referrer carrying its token to
# another site, no framing (a framed "unsubscribe from everything" button could be clicked for them).
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}


def language(locale: str | None) -> str:
    """The page language for a customer's locale: any Chinese one reads Simplified Chinese, the rest English."""
    return ZH_CN if (locale or "").lower().startswith("zh") else EN


def words(lang: str, key: str, **values: str) -> str:
    """One string of the page, with its values escaped."""
    return escape(STRINGS[lang][key]).format(**{k: escape(v) for k, v in values.items()})


def mask(address: str | None) -> str:
    """An address as a page shows it: enough to recognise, not to read (a***@example.com)."""
    local, at, domain = (address or "").partition("@")
    return f"{local[:1]}***{at}{domain}"


def page(lang: str, title_key: str, body: str, status: int = 200) -> Response:
    """`body` is HTML already escaped by the caller."""
    html = _LAYOUT.format(lang=escape(lang), title=words(lang, title_key), body=body)
    return Response(html, status=status, mimetype="text/html", headers=_HEADERS)


def message(lang: str, title_key: str, key: str, status: int = 200, **values: str) -> Response:
    """A page of one sentence."""
    return page(lang, title_key, f"<p>{words(lang, key, **values)}</p>", status)
