"""Run the benchmarks and print the results as Markdown for docs/benchmarks.md.

    python -m benchmarks                    # every benchmark, full sizes (what `make bench` runs)
    python -m benchmarks --quick            # tiny sizes, to check that everything runs
    python -m benchmarks --only storm       # one benchmark; repeat --only for more
    python -m benchmarks --json FILE        # also write every raw number to FILE

Each benchmark runs in a fresh child process. Progress goes to standard error, and the Markdown
to standard output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ._machine import describe_machine, load_average
from ._results import Section, Table
from ._section import BENCHMARKS

__all__ = ["main", "render"]

_ROOT = Path(__file__).resolve().parent.parent
# Upper bounds on one benchmark's child process, far above its usual duration, so that a hung
# server or peer cannot keep the run going forever.
_TIMEOUT_SECONDS = {False: 1800.0, True: 120.0}


def _run_section(name: str, *, quick: bool) -> Section:
    command = [sys.executable, "-m", "benchmarks._section", name]
    if quick:
        command.append("--quick")
    completed = subprocess.run(
        command,
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        timeout=_TIMEOUT_SECONDS[quick],
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"benchmark {name!r} failed with exit status {completed.returncode}; its error"
            " output is above"
        )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"benchmark {name!r} printed no result")
    return Section.from_json(json.loads(lines[-1]))


def render(
    sections: list[Section],
    *,
    command: str,
    started: datetime,
    machine_description: dict[str, str],
    load_before: str,
    load_after: str,
) -> str:
    """Render a run's Markdown: the command, the machine, every goal, then each section."""
    machine = Table(
        caption="",
        columns=["", ""],
        rows=[[key, value] for key, value in machine_description.items()],
    )
    machine.rows.extend(
        [
            ["load average (1, 5, 15 min) before the run", load_before],
            ["load average (1, 5, 15 min) after the run", load_after],
        ]
    )
    parts = [
        f"## Results of {started:%Y-%m-%d %H:%M} UTC",
        f"Command: `{command}`",
        machine.to_markdown(),
    ]
    verdicts = [verdict for section in sections for verdict in section.verdicts]
    if verdicts:
        parts.append(
            "Goals:\n\n" + "\n".join(verdict.to_markdown() for verdict in verdicts),
        )
    parts.extend(section.to_markdown() for section in sections)
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and print their Markdown; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure mlops_guard_events against its peers and print Markdown results.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run every benchmark with tiny sizes, in seconds; the figures are not meaningful",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark ({', '.join(BENCHMARKS)}); repeat for more",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the results, with every raw number, to FILE as JSON",
    )
    arguments = parser.parse_args(argv)
    names = arguments.only or list(BENCHMARKS)
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])

    started = datetime.now(timezone.utc)
    load_before = load_average()
    sections: list[Section] = []
    for name in names:
        print(f"benchmark {name}: running", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            sections.append(_run_section(name, quick=arguments.quick))
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"benchmark {name}: {error}", file=sys.stderr)
            return 1
        print(
            f"benchmark {name}: done in {time.perf_counter() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    load_after = load_average()
    machine_description = describe_machine()

    sys.stdout.write(
        render(
            sections,
            command=command.strip(),
            started=started,
            machine_description=machine_description,
            load_before=load_before,
            load_after=load_after,
        )
    )
    if arguments.json is not None:
        document = {
            "command": command.strip(),
            "started": started.isoformat(),
            "machine": machine_description,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "sections": [section.to_json() for section in sections],
        }
        arguments.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
