"""Run one benchmark in this process and print its result as one JSON line.

The runner starts `python -m benchmarks._section NAME [--quick]` once per benchmark, so that
each one starts from a fresh interpreter: no library state, imported peer or memory growth
carries over from one benchmark to the next.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS = {
    "success": "benchmarks.success_path",
    "failure": "benchmarks.failure_path",
    "delivery": "benchmarks.delivery",
    "import": "benchmarks.import_cost",
    "storm": "benchmarks.storm",
}
"""Each benchmark's name on the command line and the module whose `run(quick=...)` measures it."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark named on the command line and print its JSON result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._section")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="run with tiny sizes")
    arguments = parser.parse_args(argv)

    module = importlib.import_module(BENCHMARKS[arguments.name])
    section = module.run(quick=arguments.quick)
    sys.stdout.write(json.dumps(section.to_json()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
