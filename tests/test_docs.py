"""Every link from the README and docs/ to a file of this repository resolves to a file in git: a
claim in the docs points at something a reader can open (a benchmark result, a screenshot)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _tracked() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(listed.splitlines())


def _local_links(page: Path) -> list[tuple[str, str]]:
    found = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = unquote(target.split("#", 1)[0])
        resolved = (page.parent / path).resolve()
        found.append((target, str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)))
    return found


def test_every_link_to_a_repository_file_resolves_to_a_tracked_file():
    tracked = _tracked()
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages
        for target, path in _local_links(page)
        if path not in tracked and not any(name.startswith(path + "/") for name in tracked)
    ]
    assert broken == []
