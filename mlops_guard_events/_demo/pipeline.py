"""The demo's moderation pipeline, instrumented only with this library's public API.

A prompt passes three guards before it reaches the model (prompt injection, toxicity, and a
remote jailbreak classifier that fails closed on timeout), has personal data redacted, and is
answered by a score function. The response passes the toxicity guard, is redacted, and goes to
a remote topic classifier that fails open on timeout. Setup validates each guard's
configuration and creates the deployment's custom metrics; after each batch of prompts the
metric values are uploaded. Every failure, timeout and block becomes a moderation event through
the decorators, the context managers or the explicit call, never through hand-written
reporting code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .. import (
    ModerationEventType,
    config_events,
    guard_events,
    metric_creation_events,
    metric_reporting_events,
    report_moderation_event,
    scoring_events,
)
from .backend import JAILBREAK_ROUTE, TOPIC_ROUTE, post_json
from .data import DemoPrompt
from .deployment import CustomMetricConflictError, CustomMetricLimitError, DemoDeployment
from .detectors import (
    INJECTION_THRESHOLD,
    find_personal_data,
    find_toxic_words,
    injection_score,
    redact_personal_data,
)

__all__ = [
    "GUARD_CONFIGS",
    "GUARD_TIMEOUT_SECONDS",
    "METRICS_TO_CREATE",
    "ContextLengthError",
    "GuardConfig",
    "MetricSetup",
    "Outcome",
    "Verdict",
    "create_custom_metrics",
    "metric_values",
    "moderate",
    "upload_metrics",
    "validate_guard_configs",
]

GUARD_TIMEOUT_SECONDS: Final = 0.5
"""How long each remote classifier may take per call, in seconds."""

CONTEXT_WINDOW_WORDS: Final = 128
"""The maximum prompt length the demo's model accepts, in words."""

JAILBREAK_THRESHOLD: Final = 0.5
"""The remote jailbreak score from which a prompt is blocked."""

PROMPT_INJECTION: Final = "prompt-injection"
TOXICITY: Final = "toxicity"
PII_DETECTOR: Final = "pii-detector"
JAILBREAK_CLASSIFIER: Final = "jailbreak-classifier"
TOPIC_CLASSIFIER: Final = "topic-classifier"
FAITHFULNESS: Final = "faithfulness"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A guard's decision about one text.

    Attributes:
        action: `pass`, `block`, or `replace` (pass with `text` in place of the original).
        reason: Why, for the decision table and for the event of a blocked outcome.
        text: The replacement text when `action` is `replace`.
        fallback: Whether the guard failed or timed out and this is its fallback verdict.
    """

    action: str
    reason: str = ""
    text: str | None = None
    fallback: bool = False


PASS: Final = Verdict("pass")


def blocked_reason(verdict: Verdict) -> str | None:
    """Return the reason of a blocking verdict, which makes the guard report a blocked outcome."""
    return verdict.reason if verdict.action == "block" else None


# The guards. Each decorator reports the guard's own failure and returns the fallback verdict
# in place of the exception, so a broken guard never breaks the pipeline.


@guard_events(PROMPT_INJECTION, blocked=blocked_reason, fallback=PASS)
def check_prompt_injection(text: str) -> Verdict:
    """Block text that looks like a prompt-injection attempt to the local heuristic."""
    score = injection_score(text)
    if score >= INJECTION_THRESHOLD:
        return Verdict("block", f"injection score {score:.1f} is at least {INJECTION_THRESHOLD}")
    return PASS


@guard_events(TOXICITY, blocked=blocked_reason, fallback=PASS)
def check_toxicity(text: str) -> Verdict:
    """Block text with a word of the toxicity list."""
    words = find_toxic_words(text)
    if words:
        # The reason becomes the event's message, so it counts the words instead of quoting
        # the user's text.
        noun = "word" if len(words) == 1 else "words"
        return Verdict("block", f"{len(words)} {noun} of the toxicity list")
    return PASS


@guard_events(PII_DETECTOR, fallback=PASS)
def redact_pii(text: str) -> Verdict:
    """Replace e-mail addresses, phone numbers and card numbers with placeholders."""
    kinds = find_personal_data(text)
    if kinds:
        return Verdict("replace", f"redacted {', '.join(kinds)}", redact_personal_data(text))
    return PASS


def _describe_failure(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {GUARD_TIMEOUT_SECONDS:g} s"
    return f"failed with {type(error).__name__}"


def fail_closed(error: BaseException) -> Verdict:
    """Return the verdict of a guard that must not let an attack through: block."""
    return Verdict("block", f"{_describe_failure(error)}, failed closed", fallback=True)


def fail_open(error: BaseException) -> Verdict:
    """Return the verdict of a guard whose result only annotates the response: pass."""
    return Verdict("pass", f"{_describe_failure(error)}, failed open", fallback=True)


@guard_events(
    JAILBREAK_CLASSIFIER,
    blocked=blocked_reason,
    timeout=GUARD_TIMEOUT_SECONDS,
    fallback=fail_closed,
)
async def check_jailbreak(backend_url: str, prompt_id: str, text: str) -> Verdict:
    """Ask the remote jailbreak classifier about `text`, and block a high score."""
    result = await post_json(backend_url, JAILBREAK_ROUTE, {"id": prompt_id, "text": text})
    score = float(result["score"])
    if score >= JAILBREAK_THRESHOLD:
        return Verdict("block", f"jailbreak score {score:.2f} is at least {JAILBREAK_THRESHOLD}")
    return PASS


@guard_events(TOPIC_CLASSIFIER, timeout=GUARD_TIMEOUT_SECONDS, fallback=fail_open)
async def classify_topic(backend_url: str, prompt_id: str, text: str) -> Verdict:
    """Ask the remote topic classifier which topic `text` is about."""
    result = await post_json(backend_url, TOPIC_ROUTE, {"id": prompt_id, "text": text})
    return Verdict("pass", f"topic: {result['topic']}")


# The score function.


class ContextLengthError(ValueError):
    """The prompt is longer than the model's context window."""


@scoring_events()
async def complete(prompt: DemoPrompt, text: str) -> str:
    """Answer the prompt as the demo's model does: with the bundled response.

    Raises:
        ContextLengthError: `text` has more than `CONTEXT_WINDOW_WORDS` words, or the data
            set has no response for it.
    """
    words = len(text.split())
    if words > CONTEXT_WINDOW_WORDS or prompt.response is None:
        raise ContextLengthError(
            f"prompt of {words} words exceeds the model's context window of"
            f" {CONTEXT_WINDOW_WORDS} words"
        )
    return prompt.response


# Guard configuration.


class GuardConfigError(ValueError):
    """A guard's configuration lacks a setting the guard needs."""


@dataclasses.dataclass(frozen=True)
class GuardConfig:
    """One guard's entry in the deployment's moderation configuration.

    Attributes:
        name: The guard's name.
        stage: `prompt` or `response`.
        settings: The guard's settings, by name.
        required: Names of the settings the guard cannot work without.
    """

    name: str
    stage: str
    settings: Mapping[str, str]
    required: tuple[str, ...] = ()


GUARD_CONFIGS: Final = (
    GuardConfig(PROMPT_INJECTION, "prompt", {"action": "block"}),
    GuardConfig(TOXICITY, "prompt", {"action": "block"}),
    GuardConfig(JAILBREAK_CLASSIFIER, "prompt", {"action": "block", "on_timeout": "block"}),
    GuardConfig(PII_DETECTOR, "prompt", {"action": "replace"}),
    GuardConfig(TOXICITY, "response", {"action": "block"}),
    GuardConfig(PII_DETECTOR, "response", {"action": "replace"}),
    GuardConfig(TOPIC_CLASSIFIER, "response", {"action": "report", "on_timeout": "pass"}),
    # A faithfulness guard compares the response with the retrieved context, so it needs to
    # know which column contains that context; this configuration leaves it out.
    GuardConfig(
        FAITHFULNESS,
        "response",
        {"action": "block", "threshold": "0.7"},
        required=("context_column",),
    ),
)


def validate_guard_config(config: GuardConfig) -> None:
    """Check that `config` has every setting its guard needs.

    Raises:
        GuardConfigError: A required setting is missing.
    """
    missing = [name for name in config.required if name not in config.settings]
    if missing:
        raise GuardConfigError(
            f"guard {config.name!r} ({config.stage} stage) needs the setting"
            f" {', '.join(repr(name) for name in missing)}, which its configuration lacks;"
            " its intervention is switched off"
        )


def validate_guard_configs(configs: Iterable[GuardConfig]) -> tuple[list[GuardConfig], list[str]]:
    """Validate each guard's configuration, reporting a configuration error for each bad one.

    Returns:
        The configurations that are valid, and the names of the guards switched off.
    """
    valid = []
    switched_off = []
    for config in configs:
        with config_events(config.name, fallback=None) as scope:
            validate_guard_config(config)
        if scope.suppressed:
            switched_off.append(config.name)
        else:
            valid.append(config)
    return valid, switched_off


# Custom metrics.

METRICS_TO_CREATE: Final = (
    ("blocked_prompts", "count"),
    ("pii_redactions", "count"),
    ("guard_latency", "ms"),  # invalid units: the deployment rejects this one metric
    ("toxicity_blocks", "count"),
    ("guard_timeouts", "count"),
    ("jailbreak_score", "percent"),
)


@dataclasses.dataclass
class MetricSetup:
    """The result of creating the custom metrics, name by name."""

    created: list[str] = dataclasses.field(default_factory=list)
    existing: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    not_attempted: list[str] = dataclasses.field(default_factory=list)
    limit_reached: bool = False


def create_custom_metrics(
    deployment: DemoDeployment, metrics: Sequence[tuple[str, str]]
) -> MetricSetup:
    """Create each custom metric on `deployment`, as the moderation library does at startup.

    A single failure is reported with the metric's name. A metric that exists already is
    skipped without an event. When the deployment's maximum is reached, creation stops and
    one event without a metric name is reported with the explicit call.

    Raises:
        EventDeliveryError: The explicit call could not deliver its event.
    """
    setup = MetricSetup()
    for index, (name, units) in enumerate(metrics):
        reporter = metric_creation_events(
            name,
            ignored_exceptions=(CustomMetricConflictError, CustomMetricLimitError),
            fallback=None,
        )
        try:
            with reporter as scope:
                deployment.create_custom_metric(name, units=units)
        except CustomMetricConflictError:
            setup.existing.append(name)
            continue
        except CustomMetricLimitError as error:
            report_moderation_event(
                ModerationEventType.MODERATION_METRIC_CREATION_ERROR,
                title="Custom metric limit reached",
                message=f"{error}. Custom metrics not created: {_names(metrics[index:])}.",
            )
            setup.limit_reached = True
            setup.not_attempted = [metric for metric, _ in metrics[index:]]
            break
        if scope.suppressed:
            setup.failed.append(name)
        else:
            setup.created.append(name)
    return setup


def _names(metrics: Sequence[tuple[str, str]]) -> str:
    return ", ".join(name for name, _ in metrics)


@metric_reporting_events(fallback=False)
def upload_metrics(deployment: DemoDeployment, rows: Sequence[Mapping[str, float]]) -> bool:
    """Upload one batch of metric values; a failure is reported and returns False."""
    deployment.upload(rows)
    return True


# The pipeline.


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The pipeline's decision for one prompt.

    Attributes:
        prompt: The prompt.
        decision: `allowed`, `blocked`, or `error` when the score function failed.
        detail: Which guard decided and why, and what was redacted or timed out.
        redactions: How many texts (prompt, response) had personal data replaced.
    """

    prompt: DemoPrompt
    decision: str
    detail: str
    redactions: int = 0


async def moderate(prompt: DemoPrompt, backend_url: str) -> Outcome:
    """Run one prompt through the prompt guards, the model and the response guards."""
    blocked = await _check_prompt(prompt, backend_url)
    if blocked is not None:
        return blocked

    notes = []
    text = prompt.prompt
    redaction = redact_pii(text)
    if redaction.action == "replace" and redaction.text is not None:
        text = redaction.text
        notes.append(f"prompt {redaction.reason}")

    try:
        response = await complete(prompt, text)
    except ContextLengthError as error:
        return Outcome(prompt, "error", f"score function failed: {error}", len(notes))

    verdict = check_toxicity(response)
    if verdict.action == "block":
        return Outcome(prompt, "blocked", f"response blocked by {TOXICITY}: {verdict.reason}")
    redaction = redact_pii(response)
    if redaction.action == "replace":
        notes.append(f"response {redaction.reason}")
    topic = await classify_topic(backend_url, prompt.id, response)
    if topic.fallback:
        notes.append(f"{TOPIC_CLASSIFIER} {topic.reason}")
    redactions = sum(1 for note in notes if "redacted" in note)
    return Outcome(prompt, "allowed", "; ".join(notes), redactions)


async def _check_prompt(prompt: DemoPrompt, backend_url: str) -> Outcome | None:
    for name, guard in ((PROMPT_INJECTION, check_prompt_injection), (TOXICITY, check_toxicity)):
        verdict = guard(prompt.prompt)
        if verdict.action == "block":
            return Outcome(prompt, "blocked", f"prompt blocked by {name}: {verdict.reason}")
    verdict = await check_jailbreak(backend_url, prompt.id, prompt.prompt)
    if verdict.fallback:
        return Outcome(prompt, "blocked", f"{JAILBREAK_CLASSIFIER} {verdict.reason}")
    if verdict.action == "block":
        return Outcome(
            prompt, "blocked", f"prompt blocked by {JAILBREAK_CLASSIFIER}: {verdict.reason}"
        )
    return None


def metric_values(outcome: Outcome, metric_names: Iterable[str]) -> dict[str, float]:
    """Return one row of custom-metric values for `outcome`, for the metrics that exist."""
    response = outcome.prompt.response if outcome.decision == "allowed" else None
    values = {
        "prompt_tokens": float(len(outcome.prompt.prompt.split())),
        "response_tokens": float(len(response.split())) if response else 0.0,
        "blocked_prompts": float(outcome.detail.startswith("prompt blocked")),
        "pii_redactions": float(outcome.redactions),
        "toxicity_blocks": float(f"blocked by {TOXICITY}" in outcome.detail),
    }
    names = set(metric_names)
    return {name: value for name, value in values.items() if name in names}
