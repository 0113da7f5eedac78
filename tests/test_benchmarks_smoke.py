"""Each benchmark runs end to end with tiny sizes (`python -m benchmarks --quick`).

The figures of a quick run mean nothing, so only the output's shape is checked. prometheus_client
and the OpenTelemetry SDK come only with the `bench` extra: without them the success-path
benchmark reports those peers as not installed. The other benchmarks need `datarobot`, which the
`test` extra installs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TITLES = {
    "success": "### 1. Success path",
    "failure": "### 2. Failure path",
    "delivery": "### 3. Delivery throughput",
    "import": "### 4. Import",
    "storm": "### 5. Storm",
}
NEEDS_OFFICIAL_CLIENT = {"failure", "delivery", "import", "storm"}


def run_quick(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("name", list(TITLES))
def test_quick_run_prints_section(name: str) -> None:
    if name in NEEDS_OFFICIAL_CLIENT and importlib.util.find_spec("datarobot") is None:
        pytest.skip("datarobot is not installed; pip install -e '.[test]'")

    completed = run_quick("--only", name)

    assert completed.returncode == 0, completed.stderr
    assert TITLES[name] in completed.stdout
    assert "Command: `python -m benchmarks --quick --only" in completed.stdout
    assert "| platform |" in completed.stdout
    assert "\n|---|" in completed.stdout


def test_quick_run_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    completed = run_quick("--only", "success", "--json", str(output))

    assert completed.returncode == 0, completed.stderr
    document = json.loads(output.read_text(encoding="utf-8"))
    assert [section["key"] for section in document["sections"]] == ["success"]
    assert document["sections"][0]["verdicts"]
    assert "Python" in document["machine"]


def test_unknown_benchmark_is_rejected() -> None:
    completed = run_quick("--only", "latency")

    assert completed.returncode == 2
    assert "invalid choice: 'latency'" in completed.stderr
