"""The measurement scripts of scripts/ run end to end on small inputs (their numbers are not asserted)."""

import subprocess
import sys

from helpers import REPO_ROOT


def run_script(name, *args, cwd):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / name), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_benchmark_eer_runs(tmp_path):
    out = run_script("benchmark_eer.py", "--trials", "200", "--repeats", "1", cwd=tmp_path)
    assert out.startswith("machine: ") and len(out.strip().splitlines()) == 3


def test_benchmark_data_prep_runs(tmp_path):
    out = run_script("benchmark_data_prep.py", "--files", "120", "--workers", "1", "--dir", str(tmp_path), cwd=tmp_path)
    assert "first preparation" in out and "re-run on the prepared folder" in out
    assert not list(tmp_path.iterdir())  # the generated tree is deleted
