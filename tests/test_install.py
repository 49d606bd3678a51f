"""The production install, as an operator does it: a wheel built from this tree, installed into a
clean virtual environment without the test or lint extras, then a workspace made and run from it
outside the source tree. And the systemd units point where the README's install puts things."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.store import ROOT

UNITS = sorted((ROOT / "docs" / "deploy").glob("*.service"))


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done.stdout


def test_a_wheel_installs_into_a_clean_venv_and_runs_a_workspace(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", ROOT, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("nudge-*.whl")
    venv = tmp_path / "venv"
    run(Path(sys.base_prefix) / "bin" / "python3", "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "pip", "install", "--quiet", wheel, cwd=tmp_path)
    python, nudge = venv / "bin" / "python", venv / "bin" / "nudge"
    # The installed copy runs, not this source tree; no test or lint tool came along.
    where = run(python, "-c", "import engine; print(engine.__file__)", cwd=tmp_path)
    assert where.startswith(str(venv))
    missing = run(
        python,
        "-c",
        "import importlib.util as u; print([m for m in ('pytest', 'ruff', 'hypothesis') if u.find_spec(m)])",
        cwd=tmp_path,
    )
    assert missing.strip() == "[]"
    run(nudge, "init", tmp_path / "shop", cwd=tmp_path)
    shop = tmp_path / "shop"
    assert "ok: 7 campaigns" in run(nudge, "validate", cwd=shop)
    run(nudge, "demo", "--customers", "200", "--at", "2026-06-01T12:00:00+08:00", cwd=shop)
    run(nudge, "run", "--at", "2026-06-01T12:00:00+08:00", cwd=shop)
    assert list((shop / "outbox").glob("*.eml"))  # the migrations, templates and scaffold were all in the wheel
    run(nudge, "report", "--html", "-o", shop / "report.html", cwd=shop)  # and the dashboard's templates
    assert 'data-chart="history"' in (shop / "report.html").read_text()


def test_the_systemd_units_run_the_binary_the_readme_installs():
    readme = (ROOT / "README.md").read_text()
    assert UNITS
    for unit in UNITS:
        text = unit.read_text()
        [binary] = re.findall(r"^ExecStart=(\S+)", text, re.MULTILINE)
        [workspace] = re.findall(r"^WorkingDirectory=(\S+)", text, re.MULTILINE)
        assert binary in readme, f"{unit.name}: {binary} is not where the README installs nudge"
        assert workspace in readme, f"{unit.name}: {workspace} is not the README's workspace"
