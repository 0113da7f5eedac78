"""Run the demo end to end and print its progress and summary tables."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from .. import configure, flush, shutdown, stats
from .._config import reset_settings
from .._receiver import RemoteEventsReceiver
from ..cli import format_table
from .backend import JAILBREAK_ROUTE, TOPIC_ROUTE, ClassifierBackend
from .data import DemoPrompt, load_prompts
from .deployment import DemoDeployment
from .pipeline import (
    GUARD_CONFIGS,
    METRICS_TO_CREATE,
    MetricSetup,
    Outcome,
    create_custom_metrics,
    metric_values,
    moderate,
    upload_metrics,
    validate_guard_configs,
)

__all__ = ["choose_slow_prompts", "run_demo"]

# The receiver checks this token as DataRobot checks a real one.
DEMO_TOKEN: Final = "demo-token"
DEPLOYMENT_ID: Final = "650f1a2b3c4d5e6f70819203"
SLOW_PROMPTS_PER_GUARD: Final = 3
# Far beyond the guards' timeout. The backend releases held responses when it stops.
BACKEND_SLOW_SECONDS: Final = 30.0
MAX_CUSTOM_METRICS: Final = 5
EXISTING_METRICS: Final = ("prompt_tokens", "response_tokens", "blocked_prompts")
METRIC_BATCH_SIZE: Final = 10
FAILING_UPLOAD_BATCHES: Final = (3,)
FLUSH_TIMEOUT_SECONDS: Final = 15.0
STAGES: Final = 6


def choose_slow_prompts(prompts: Sequence[DemoPrompt], seed: int) -> dict[str, frozenset[str]]:
    """Pick, with a seeded generator, the prompts each remote classifier responds to too late.

    Only prompts that reach the classifiers are candidates: benign and personal-data prompts
    that the model can complete. The two classifiers get different prompts.

    Returns:
        The slow prompt IDs for each backend route.
    """
    generator = random.Random(seed)
    candidates = [
        prompt.id
        for prompt in prompts
        if prompt.kind in ("benign", "pii") and prompt.response is not None
    ]
    jailbreak = generator.sample(candidates, SLOW_PROMPTS_PER_GUARD)
    remaining = [prompt_id for prompt_id in candidates if prompt_id not in jailbreak]
    topic = generator.sample(remaining, SLOW_PROMPTS_PER_GUARD)
    return {JAILBREAK_ROUTE: frozenset(jailbreak), TOPIC_ROUTE: frozenset(topic)}


def run_demo(*, seed: int, events_file: Path | None, out: TextIO) -> int:
    """Run the demo pipeline against a local receiver and print what happened.

    Settings come from `configure()` arguments only, so the caller's DataRobot environment is
    not used. The spool lives in a temporary directory that is removed at the end.

    Args:
        seed: The seed that picks the slow backend calls.
        events_file: The JSON Lines file the receiver writes every event to; None creates
            one in a new temporary directory, which is kept so the user can read it.
        out: Where to print.

    Returns:
        0 when the receiver got every event the library delivered, else 1.
    """
    prompts = load_prompts()
    if events_file is None:
        directory = tempfile.mkdtemp(prefix="mlops-guard-events-demo-")
        events_file = Path(directory) / "received-events.jsonl"
    slow = choose_slow_prompts(prompts, seed)
    delivered_before = stats()["delivered"]

    with (
        tempfile.TemporaryDirectory(prefix="mlops-guard-events-demo-state-") as state_dir,
        RemoteEventsReceiver(token=DEMO_TOKEN, jsonl_path=events_file) as receiver,
        ClassifierBackend(slow, BACKEND_SLOW_SECONDS) as backend,
    ):
        _stage(out, 1, f"started a receiver at {receiver.endpoint} (token required)")
        _print(
            out, f"      and a classifier backend at {backend.url}, slow for {_describe_slow(slow)}"
        )
        configure(
            endpoint=receiver.endpoint,
            api_token=DEMO_TOKEN,
            deployment_id=DEPLOYMENT_ID,
            state_dir=state_dir,
            # Every event is sent on its own. With the default 60 s window, the repeats of a
            # guard's event would arrive as one summary event.
            coalesce_window=0,
        )
        try:
            outcomes = _run_pipeline(prompts, backend.url, out)
            pending = flush(FLUSH_TIMEOUT_SECONDS)
            noun = "event" if pending == 1 else "events"
            _stage(out, 6, f"flushed the event queue: {pending} {noun} still pending")
        finally:
            shutdown(FLUSH_TIMEOUT_SECONDS)
            reset_settings()
        accepted = len(receiver.events())
    delivered = stats()["delivered"] - delivered_before
    return _print_summary(out, outcomes, events_file, accepted=accepted, delivered=delivered)


def _run_pipeline(prompts: Sequence[DemoPrompt], backend_url: str, out: TextIO) -> list[Outcome]:
    valid, switched_off = validate_guard_configs(GUARD_CONFIGS)
    _stage(
        out,
        2,
        f"validated {len(GUARD_CONFIGS)} guard configurations: {len(valid)} valid,"
        f" switched off: {', '.join(switched_off) or 'none'}",
    )

    deployment = DemoDeployment(
        DEPLOYMENT_ID,
        max_custom_metrics=MAX_CUSTOM_METRICS,
        existing_metrics=EXISTING_METRICS,
        failing_batches=FAILING_UPLOAD_BATCHES,
    )
    setup = create_custom_metrics(deployment, METRICS_TO_CREATE)
    _stage(out, 3, _describe_metric_setup(setup))

    started = time.monotonic()
    outcomes = asyncio.run(_moderate_all(prompts, backend_url))
    decisions = Counter(outcome.decision for outcome in outcomes)
    _stage(
        out,
        4,
        f"moderated {len(outcomes)} prompts in {time.monotonic() - started:.1f} s:"
        f" {decisions['allowed']} allowed, {decisions['blocked']} blocked,"
        f" {decisions['error']} failed",
    )

    batches = [
        outcomes[start : start + METRIC_BATCH_SIZE]
        for start in range(0, len(outcomes), METRIC_BATCH_SIZE)
    ]
    uploaded = sum(
        upload_metrics(
            deployment, [metric_values(outcome, deployment.metrics) for outcome in batch]
        )
        for batch in batches
    )
    _stage(
        out,
        5,
        f"uploaded custom-metric values: {uploaded} of {len(batches)} batches,"
        f" {len(batches) - uploaded} failed",
    )
    return outcomes


async def _moderate_all(prompts: Sequence[DemoPrompt], backend_url: str) -> list[Outcome]:
    # One prompt at a time, so the events arrive in the same order on every run.
    return [await moderate(prompt, backend_url) for prompt in prompts]


def _describe_slow(slow: Mapping[str, frozenset[str]]) -> str:
    return ", ".join(f"{route} {' '.join(sorted(ids))}" for route, ids in sorted(slow.items()))


def _describe_metric_setup(setup: MetricSetup) -> str:
    parts = [f"created {', '.join(setup.created) or 'none'}"]
    if setup.existing:
        parts.append(f"already there {', '.join(setup.existing)}")
    if setup.failed:
        parts.append(f"failed {', '.join(setup.failed)}")
    if setup.limit_reached:
        parts.append(
            f"maximum of {MAX_CUSTOM_METRICS} reached before {', '.join(setup.not_attempted)}"
        )
    return "custom metrics: " + "; ".join(parts)


def _print_summary(
    out: TextIO, outcomes: Sequence[Outcome], events_file: Path, *, accepted: int, delivered: int
) -> int:
    received = _read_events(events_file)
    _print(out)
    _print(out, "Events received, by type, guard and metric")
    counts = Counter(_event_key(event) for event in received)
    rows = [(*key, count) for key, count in sorted(counts.items())]
    rows.append(("total", "", "", "", len(received)))
    for line in format_table(("event type", "guard", "metric", "outcome", "events"), rows):
        _print(out, f"  {line}")
    types = {key[0] for key in counts}
    _print(out, f"  event types seen: {len(types)} of 5")

    _print(out)
    _print(out, "Decision for each prompt")
    decision_rows = [
        (outcome.prompt.id, outcome.prompt.kind, outcome.decision, outcome.detail)
        for outcome in outcomes
    ]
    for line in format_table(("prompt", "kind", "decision", "detail"), decision_rows):
        _print(out, f"  {line}")

    _print(out)
    _print(out, f"The library delivered {delivered} events; the receiver accepted {accepted};")
    _print(out, f"the table above counts {len(received)}.")
    _print(out, f"Full event log (one JSON event a line): {events_file}")
    if delivered == accepted == len(received):
        return 0
    _print(
        out,
        "MISMATCH: the counts differ, so events were lost or duplicated; run with -v to see"
        " the library's log.",
    )
    return 1


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            events.append(json.loads(line))
    return events


def _event_key(event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    names = event.get("moderationData") or {}
    return (
        str(event.get("eventType", "")),
        str(names.get("guardName", "")),
        str(names.get("metricName", "")),
        _summarize_title(str(event.get("title", ""))),
    )


def _summarize_title(title: str) -> str:
    """Return the outcome that an event title names, or the title when it is not recognized.

    The titles matched are the ones the library's decorators and context managers write,
    such as "Guard 'toxicity' blocked the response".
    """
    for words, outcome in ((" blocked ", "blocked"), (" timed out ", "timed out")):
        if words in title:
            return outcome
    if title.endswith(" failed"):
        return "failed"
    return title


def _stage(out: TextIO, number: int, text: str) -> None:
    _print(out, f"[{number}/{STAGES}] {text}")


def _print(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)
