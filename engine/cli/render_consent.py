"""`nudge customer ID`'s consent: the customer's choice per topic and the consent log, as support
staff read them (times in the workspace's zone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from engine.cli.output import local_time


def _value(text: str | None, zone: str) -> str:
    """A logged value: true/false, a reason, or an instant (shown in the zone, like every time here)."""
    if text is None:
        return "–"
    if len(text) >= 19 and text[4] == "-" and text[10] == "T":
        try:
            return local_time(datetime.fromisoformat(text), zone)
        except ValueError:
            pass
    return text


def consent_view(data: dict[str, Any], console: Console, zone: str) -> None:
    """The phone and its SMS consent, topic choices on one line, then the consent log (newest first)."""
    person = data["customer"]
    if person.get("phone"):
        sms = "SMS opted in" if person.get("sms_opt_in") else "SMS not opted in"
        if person.get("sms_unsubscribed_at"):
            sms = f"SMS unsubscribed {local_time(datetime.fromisoformat(person['sms_unsubscribed_at']), zone)}"
        console.print(f"{person['phone']} · {sms}", highlight=False)
    choices = data.get("subscriptions", [])
    if choices:
        shown = []
        for choice in choices:
            state = "subscribed" if choice["subscribed"] else "left"
            when = f" {local_time(datetime.fromisoformat(choice['updated_at']), zone)}" if choice["updated_at"] else ""
            shown.append(f"{choice['topic']}: {state}{when if choice['chosen'] else ' (default)'}")
        console.print("topics: " + "; ".join(shown), highlight=False)
    entries = data.get("consent_log", [])
    if not entries:
        return
    table = Table(title=f"Consent log ({len(entries)})", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("when", "channel", "topic", "change", "old → new", "source"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            local_time(datetime.fromisoformat(entry["at"]), zone),
            entry["channel"] or "–",
            entry["topic"] or "–",
            entry["change"],
            f"{_value(entry['old_value'], zone)} → {_value(entry['new_value'], zone)}",
            entry["source"],
        )
    console.print(table)
