"""Start-up against its floor: what `nudge dry-run` imports before it plans, beside the third-party
packages it is built on imported alone (SQLAlchemy, pydantic, Jinja, YAML, click), in the same
run, in fresh processes.

Two measures, median of RUNS each: the sum of the import self times `python -X importtime` reports
(what issue 25's target, ≤ 1.3× the floor, is about), for `nudge dry-run` on the bench's workspace
(its smallest campaign, so the planning after the imports is short) and for the floor; and the
wall time of `nudge dry-run --help` (the command line alone, no workspace) and of the floor.

Both sides run from bytecode, as an installed package does (pip compiles it at install; the
floor's packages in site-packages are compiled): the measured processes write and read it under a
temporary PYTHONPYCACHEPREFIX, each command run once beforehand. Without that, where
PYTHONDONTWRITEBYTECODE is set and the source tree has no __pycache__, every run compiles nudge's
own modules from source (~50 ms) and the floor's not, which is no part of nudge's start-up.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 10
FLOOR = "import sqlalchemy, pydantic, jinja2, yaml, click"
SMALLEST = "birthday"  # the standard campaign with the fewest customers


def _compiled(cache: str) -> dict[str, str]:
    """The environment of a measured process: bytecode written and read under `cache`."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _imports(command: list[str], env: dict[str, str]) -> float:
    """Seconds: the sum of every module's own import time in one fresh process."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command], cwd=ROOT, capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    lines = (line for line in done.stderr.splitlines() if line.startswith("import time:") and "self [us]" not in line)
    return sum(int(line[len("import time:") :].split("|")[0]) for line in lines) / 1e6


def _wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, check=True, env=env)
    return time.perf_counter() - started


def _median(measure, command: list[str], runs: int, env: dict[str, str]) -> float:
    measure(command, env)  # compiles what the command imports, as an install would have
    return statistics.median(measure(command, env) for _ in range(runs))


def measure(ws: Path, at: str, runs: int = RUNS) -> dict:
    floor = ["-c", FLOOR]
    nudge = ["-m", "engine", "--workspace", str(ws)]
    dry_run = [*nudge, "dry-run", "--format", "json", "--at", at, SMALLEST]
    with tempfile.TemporaryDirectory(prefix="nudge-bytecode-") as cache:
        env = _compiled(cache)
        found = {
            "runs": runs,
            "bytecode": "compiled",
            "floor_imports_seconds": _median(_imports, floor, runs, env),
            "dry_run_imports_seconds": _median(_imports, dry_run, runs, env),
            "floor_wall_seconds": _median(_wall, floor, runs, env),
            "dry_run_help_wall_seconds": _median(_wall, [*nudge, "dry-run", "--help"], runs, env),
        }
    found["ratio_dry_run_imports_to_floor"] = found["dry_run_imports_seconds"] / found["floor_imports_seconds"]
    found["ratio_dry_run_help_wall_to_floor"] = found["dry_run_help_wall_seconds"] / found["floor_wall_seconds"]
    return found


def table_rows(row, number) -> None:
    """The report's lines: each measure and its ratio to the floor."""
    row("start-up: third-party imports alone (floor) s", lambda d: number(d["startup"]["floor_imports_seconds"], 3))
    row("start-up: nudge dry-run imports s", lambda d: number(d["startup"]["dry_run_imports_seconds"], 3))
    row(
        "ratio dry-run imports / floor (target <= 1.3)",
        lambda d: number(d["startup"]["ratio_dry_run_imports_to_floor"]),
    )
    row(
        "ratio `nudge dry-run --help` / floor (wall)",
        lambda d: number(d["startup"]["ratio_dry_run_help_wall_to_floor"]),
    )


if __name__ == "__main__":  # python -m bench.startup WORKSPACE AT: the measures alone, as JSON
    import json

    json.dump(measure(Path(sys.argv[1]), sys.argv[2], int(os.environ.get("RUNS", RUNS))), sys.stdout, indent=2)
