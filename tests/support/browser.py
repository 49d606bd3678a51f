"""Headless Chromium, as a person's browser would open a page: the DOM after scripts ran, console
messages, and a screenshot. Debian's `chromium` (installed by `make chromium`), or the binary
named by NUDGE_TEST_CHROMIUM."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
)


def chromium() -> str:
    found = os.environ.get("NUDGE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("Chromium not found: run `make chromium` (or set NUDGE_TEST_CHROMIUM)")
    return found


@dataclass
class Page:
    dom: str
    console: list[str]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nudge-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
        )


def open_page(path: Path) -> Page:
    """The page's DOM once its scripts ran, and what it logged to the console."""
    done = _run(["--dump-dom", path.resolve().as_uri()])
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Page(done.stdout, console)


def screenshot(path: Path, target: Path, width: int = 1280, height: int = 2000) -> Path:
    done = _run([f"--window-size={width},{height}", f"--screenshot={target}", path.resolve().as_uri()])
    assert done.returncode == 0 and target.exists(), done.stderr[-2000:]
    return target
