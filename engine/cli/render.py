"""Turning results into text for people (rich tables) and programs (JSON, CSV)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from engine.reports.dryrun import DryRun
from engine.audience.explain import Node
from engine.core.status import Exclusion


def make_console() -> Console:
    """A terminal keeps its width; a pipe or a file gets 120 columns rather than rich's 80."""
    import sys
    return Console() if sys.stdout.isatty() else Console(width=120)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def write_json(data: Any, out: IO[str]) -> None:
    json.dump(data, out, indent=2, default=_json_default, ensure_ascii=False)
    out.write("\n")


def dry_run_table(result: DryRun, console: Console, show_ids: int = 10) -> None:
    table = Table(title=f"Dry run at {result.as_json()['at']}", title_justify="left")
    table.add_column("campaign", no_wrap=True)
    table.add_column("matched", justify="right")
    for name in Exclusion:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("targeted", justify="right", style="bold green")
    for plan in result.plans:
        table.add_row(plan.campaign, str(plan.matched), *(str(plan.excluded[n]) for n in Exclusion),
                      str(len(plan.targeted)))
    console.print(table)
    for plan in result.plans:
        if plan.targeted:
            ids = sorted(plan.targeted)
            more = f" … and {len(ids) - show_ids} more" if len(ids) > show_ids else ""
            console.print(f"[bold]{plan.campaign}[/] targets: {', '.join(ids[:show_ids])}{more}", highlight=False)
    for campaign, samples in result.samples.items():
        for sample in samples:
            console.rule(f"{campaign} → {sample.customer_id}")
            for part, text in sample.parts.items():
                if part == "body" and "text" in sample.parts:
                    continue    # the terminal shows the text alternative; JSON has both
                console.print(f"[bold]{part}:[/]", highlight=False)
                console.print(text.strip(), markup=False, highlight=False)
            if sample.error:
                console.print(f"[red]render error:[/] {sample.error}", highlight=False)


def dry_run_csv(rows: Iterable[tuple[str, str, str]], out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(["campaign", "customer_id", "outcome"])
    writer.writerows(rows)


def explain_tree(node: Node, console: Console, title: str) -> None:
    def label(n: Node) -> str:
        mark = "[green]✔ pass[/]" if n.passed else "[red]✘ fail[/]"
        value = "" if n.value is None else f"  [dim]value: {json.dumps(n.value, default=_json_default)}[/]"
        return f"{mark}  {n.label}{value}"

    def add(parent: Tree, n: Node) -> None:
        branch = parent.add(label(n))
        for child in n.children:
            add(branch, child)

    tree = Tree(title)
    add(tree, node)
    console.print(tree, highlight=False)
