"""Benchmark 4: time and memory of importing the library, against `wrapt` and `datarobot`.

Every measurement runs in a fresh interpreter. Time is the wall time of `python -c STATEMENT`
minus that of `python -c pass` in the same round, with `-X importtime` as a second view.
Memory is measured in two more fresh interpreters per statement: one traces allocations with
`tracemalloc` while it imports, and one reads its resident set size before and after.

Bytecode is cached for every package alike: the children write and read `.pyc` files under a
temporary `PYTHONPYCACHEPREFIX`, and a warm-up run fills it. Without this, a checkout run with
`PYTHONDONTWRITEBYTECODE=1` would compile the library from source on every import, while
installed packages load the `.pyc` files pip wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

from ._measure import median, rotated
from ._results import Section, Table, Verdict, format_bytes, format_ns, format_ratio

__all__ = ["run"]

BASELINE = "pass"
WRAPT = "import wrapt"
PACKAGE = "import mlops_guard_events"
DECORATOR = "from mlops_guard_events import guard_events"
OFFICIAL = "import datarobot"
STATEMENTS = (BASELINE, WRAPT, PACKAGE, DECORATOR, OFFICIAL)

# Runs in the child: imports the statement and prints the memory it took as JSON.
_MEMORY_PROBE = """
import json, os, sys
mode, statement = sys.argv[1], sys.argv[2]

def resident_bytes():
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024

if mode == "traced":
    import tracemalloc
    tracemalloc.start()
    exec(statement)
    current, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"traced": current, "traced_peak": peak}))
else:
    before = resident_bytes()
    exec(statement)
    print(json.dumps({"rss": resident_bytes() - before}))
"""


def _child_environment(cache_directory: str) -> dict[str, str]:
    environment = dict(os.environ, PYTHONPYCACHEPREFIX=cache_directory)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def _run_child(
    arguments: list[str], environment: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _wall_ns(statement: str, environment: Mapping[str, str]) -> float:
    started = time.perf_counter_ns()
    _run_child(["-c", statement], environment)
    return float(time.perf_counter_ns() - started)


def _importtime_ns(statement: str, environment: Mapping[str, str]) -> float:
    """Return the summed cumulative time of the top-level imports `-X importtime` reports."""
    stderr = _run_child(["-X", "importtime", "-c", statement], environment).stderr
    total_us = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        name = fields[2]
        # Nested imports are indented under the module that imported them.
        if name.startswith(" ") and not name.startswith("  "):
            total_us += int(fields[1])
    return total_us * 1000.0


def _memory(statement: str, mode: str, environment: Mapping[str, str]) -> dict[str, int]:
    output = _run_child(["-c", _MEMORY_PROBE, mode, statement], environment).stdout
    result: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return result


def run(*, quick: bool) -> Section:
    """Measure the import time and memory of each statement in fresh interpreters."""
    started = time.perf_counter()
    rounds = 1 if quick else 30
    memory_runs = 1 if quick else 5

    with tempfile.TemporaryDirectory(prefix="mlops-guard-events-pycache-") as cache:
        # Filling an empty cache compiles datarobot, pandas and numpy from source, which takes
        # longer than a quick run should, so a quick run uses the environment as it is.
        environment = dict(os.environ) if quick else _child_environment(cache)
        if not quick:
            for statement in STATEMENTS:
                _run_child(["-c", statement], environment)

        wall: dict[str, list[float]] = {statement: [] for statement in STATEMENTS}
        importtime: dict[str, list[float]] = {statement: [] for statement in STATEMENTS}
        for round_index in range(rounds):
            for statement in rotated(STATEMENTS, round_index):
                wall[statement].append(_wall_ns(statement, environment))
            if round_index < memory_runs:
                for statement in rotated(STATEMENTS, round_index):
                    importtime[statement].append(_importtime_ns(statement, environment))

        memory: dict[str, dict[str, list[int]]] = {
            statement: {"traced": [], "rss": []} for statement in STATEMENTS
        }
        for run_index in range(memory_runs):
            for statement in rotated(STATEMENTS, run_index):
                # Under tracemalloc, importing datarobot takes seconds, too long for a quick run.
                if not (quick and statement == OFFICIAL):
                    memory[statement]["traced"].append(
                        _memory(statement, "traced", environment)["traced"]
                    )
                memory[statement]["rss"].append(_memory(statement, "rss", environment)["rss"])

    def over_baseline(samples: dict[str, list[float]], statement: str) -> float:
        return median(
            [
                value - base
                for value, base in zip(samples[statement], samples[BASELINE], strict=True)
            ]
        )

    times = {statement: over_baseline(wall, statement) for statement in STATEMENTS[1:]}
    import_times = {statement: over_baseline(importtime, statement) for statement in STATEMENTS[1:]}
    traced = {
        statement: median(memory[statement]["traced"]) - median(memory[BASELINE]["traced"])
        for statement in STATEMENTS[1:]
        if memory[statement]["traced"]
    }
    resident = {
        statement: median(memory[statement]["rss"]) - median(memory[BASELINE]["rss"])
        for statement in STATEMENTS[1:]
    }

    rows = [
        [
            f"`{statement}`",
            format_ns(times[statement]),
            format_ns(import_times[statement]),
            format_bytes(traced[statement]) if statement in traced else "not in a quick run",
            format_bytes(resident[statement]),
            format_ratio(times[statement], times[WRAPT]),
            format_ratio(traced[statement], traced[WRAPT]) if statement in traced else "",
        ]
        for statement in STATEMENTS[1:]
    ]
    verdicts = [
        Verdict(
            goal=f"Import: `{statement}` within 1.1 times the time of `import wrapt`",
            measured=f"{format_ratio(times[statement], times[WRAPT])}"
            f" ({format_ns(times[statement])} against {format_ns(times[WRAPT])})",
            met=times[statement] <= 1.1 * times[WRAPT],
        )
        for statement in (PACKAGE, DECORATOR)
    ]
    return Section(
        key="import",
        title="4. Import: time and memory, against `wrapt` and `datarobot`",
        description=(
            "Each figure is measured in fresh interpreters started with `python -c STATEMENT`."
            f" Wall time: {rounds} rounds run every statement once in rotating order, and the"
            " table shows the median of the statement's time minus `python -c pass` in the"
            f" same round. `-X importtime`: the median over {memory_runs} runs of the summed"
            " cumulative time of the top-level imports, minus that of `pass`. Memory: the"
            " median over"
            f" {memory_runs} runs of the bytes `tracemalloc` traces after the import, and of"
            " the growth of the resident set size in an interpreter without `tracemalloc`,"
            " each minus the figure for `pass`. Bytecode is cached for every package alike,"
            " under a temporary `PYTHONPYCACHEPREFIX` filled by a warm-up run."
        ),
        tables=[
            Table(
                caption="Import cost over an interpreter that imports nothing.",
                columns=[
                    "statement",
                    "wall time",
                    "`-X importtime`",
                    "traced memory",
                    "resident set growth",
                    "time / `import wrapt`",
                    "traced memory / `import wrapt`",
                ],
                rows=rows,
            )
        ],
        verdicts=verdicts,
        notes=[
            "`import mlops_guard_events` loads only the package's `__init__` and its version:"
            " every public name is imported on first use. `from mlops_guard_events import"
            " guard_events` loads the decorators, the event and the settings, and `wrapt`;"
            " `requests` is imported when the first event is sent, and is not in these figures.",
        ],
        raw={
            "rounds": rounds,
            "memory_runs": memory_runs,
            "wall_ns": wall,
            "importtime_ns": importtime,
            "memory_bytes": memory,
        },
        elapsed_seconds=time.perf_counter() - started,
    )
