"""`nudge init`: a new workspace with the standard campaigns, and a .gitignore that keeps the
store, the outbox and exports out of git."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.core.errors import Problem, UserInputError

SCAFFOLD = Path(__file__).resolve().parent.parent / "scaffold"


def create_workspace(directory: Path) -> list[str]:
    """Write config.yaml, rules/, templates/ and .gitignore; returns what was created."""
    if (directory / "config.yaml").exists() or (directory / "rules").exists():
        raise UserInputError(
            [Problem(str(directory), None, None, "already a workspace (config.yaml or rules/ exists)")]
        )
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCAFFOLD / "config.yaml", directory / "config.yaml")
    shutil.copytree(SCAFFOLD / "rules", directory / "rules")
    shutil.copytree(SCAFFOLD / "templates", directory / "templates")
    created = ["config.yaml", "rules/", "templates/"]
    ignore = directory / ".gitignore"
    wanted = (SCAFFOLD / "gitignore").read_text(encoding="utf-8")
    if not ignore.exists():
        ignore.write_text(wanted, encoding="utf-8")
        created.append(".gitignore")
    else:  # an existing repository: add only the lines it lacks
        have = set(ignore.read_text(encoding="utf-8").splitlines())
        missing = [line for line in wanted.splitlines() if line and not line.startswith("#") and line not in have]
        if missing:
            with ignore.open("a", encoding="utf-8") as handle:
                handle.write("\n# nudge\n" + "\n".join(missing) + "\n")
            created.append(".gitignore (lines added)")
    return created
