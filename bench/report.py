"""The benchmark's table: figures and the ratios that matter."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from . import channels, delivery_floor, import_floor, ingest_http, recommend, startup
from . import sendgrid as sendgrid_bench


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


NOT_NUDGE = {"pandas", "peer", "hand_sql", "import_floor", "floor", "reference"}  # peers and floors


def nudge_peak_mb(found: dict) -> float:
    """The highest peak resident memory of any nudge process the run measured (target <= 256 MB)."""
    peaks = [0.0]
    for key, value in found.items():
        if key == "peak_rss_mb" and isinstance(value, int | float):
            peaks.append(float(value))
        elif isinstance(value, dict) and key not in NOT_NUDGE:
            peaks.append(nudge_peak_mb(value))
        elif isinstance(value, list):
            peaks += [nudge_peak_mb(v) for v in value if isinstance(v, dict)]
    return max(peaks)


def print_table(results: dict) -> None:
    console = Console(width=120)
    console.print(
        f"[bold]nudge benchmark[/] scale {results['scale']}: {results['customers']:,} customers, "
        f"{results['events']:,} events · commit {results['versions']['commit']}"
    )
    table = Table(title_justify="left")
    table.add_column("measure")
    for db in results["databases"]:
        table.add_column(db["database"], justify="right")
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, get) -> None:
        values = []
        for db in results["databases"]:
            try:
                values.append(get(db))
            except KeyError:
                values.append("–")
        if any(v != "–" for v in values):  # a phase this run skipped (--lean, --no-peer) prints nothing
            rows.append((label, values))

    row("import: events/s", lambda d: _f(d["import"]["events_per_second"], 0))
    row("import: peak RSS MB", lambda d: _f(d["import"]["peak_rss_mb"], 0))
    import_floor.table_rows(row, _f)
    ingest_http.table_rows(row, _f)
    row("4 campaigns: hand SQL s", lambda d: _f(d["segments"]["hand_sql"]["seconds"]))
    row("4 campaigns: nudge engine s", lambda d: _f(d["segments"]["engine"]["seconds"]))
    row("4 campaigns: nudge dry-run (CLI) s", lambda d: _f(d["segments"]["dry_run_cli"]["seconds"]))
    row("4 campaigns: pandas peer s", lambda d: _f(d["segments"]["pandas"]["seconds"]))
    row("4 campaigns: peer (Python per customer) s", lambda d: _f(d["segments"]["peer"]["seconds"]))
    row(
        "ratio nudge engine / hand SQL (target <= 1.2 SQLite, 1.35 PG)",
        lambda d: _f(d["segments"]["engine"]["seconds"] / d["segments"]["hand_sql"]["seconds"]),
    )
    row(
        "ratio nudge dry-run / hand SQL (target <= 1.6 at 1m)",
        lambda d: _f(d["segments"]["dry_run_cli"]["seconds"] / d["segments"]["hand_sql"]["seconds"]),
    )
    row(
        "ratio pandas peer / nudge engine",
        lambda d: _f(d["segments"]["pandas"]["seconds"] / d["segments"]["engine"]["seconds"]),
    )
    row(
        "ratio peer / nudge engine",
        lambda d: _f(d["segments"]["peer"]["seconds"] / d["segments"]["engine"]["seconds"], 1),
    )
    row("dry-run peak RSS MB", lambda d: _f(d["segments"]["dry_run_cli"]["peak_rss_mb"], 0))
    row("peak RSS of any nudge process MB (target <= 256)", lambda d: _f(nudge_peak_mb(d), 0))
    startup.table_rows(row, _f)
    row("same ids everywhere", lambda d: "yes" if all(d["segments"]["same_ids"].values()) else "NO")
    delivery_floor.table_rows(row, _f)
    row("delivery outbox: messages", lambda d: f"{d['delivery_outbox']['sent']:,}")
    row("delivery outbox: messages/s", lambda d: _f(d["delivery_outbox"]["messages_per_second"], 0))
    row("delivery outbox: peak RSS MB", lambda d: _f(d["delivery_outbox"]["peak_rss_mb"], 0))
    row("reference: plain files written there/s", lambda d: _f(d["outbox_reference"]["files_per_second"], 0))
    row(
        "reference: plain files, each fsynced/s",
        lambda d: _f(d["outbox_reference_fsync"]["files_per_second"], 0),
    )
    row(
        "ratio outbox delivery / plain fsynced files",
        lambda d: _f(d["delivery_outbox"]["messages_per_second"] / d["outbox_reference_fsync"]["files_per_second"]),
    )
    row(
        "delivery outbox without fsync: msg/s",
        lambda d: _f(d["delivery_outbox_nofsync"]["messages_per_second"], 0),
    )
    row(
        "ratio outbox delivery fsync / without",
        lambda d: _f(d["delivery_outbox"]["messages_per_second"] / d["delivery_outbox_nofsync"]["messages_per_second"]),
    )
    channels.table_rows(row, _f)
    row("delivery outbox in memory (tmpfs): msg/s", lambda d: _f(d["delivery_outbox_memory"]["messages_per_second"], 0))
    row("delivery in memory, CSS inlined: msg/s", lambda d: _f(d["css_inlining"]["inlined"], 0))
    row("delivery in memory, CSS not inlined: msg/s", lambda d: _f(d["css_inlining"]["not_inlined"], 0))
    row("ratio CSS inlined / not inlined", lambda d: _f(d["css_inlining"]["ratio"]))
    recommend.table_rows(row, _f)
    sendgrid_bench.table_rows(row, _f)
    for label, values in rows:
        table.add_row(label, *values)
    console.print(table)
