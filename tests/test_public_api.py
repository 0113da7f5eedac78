"""The package's public surface: what it exports and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mlops_guard_events

EXPECTED_NAMES = [
    "ConfigurationError",
    "EventDeliveryError",
    "EventRejectedError",
    "EventReporter",
    "EventRetryableError",
    "EventScope",
    "MLOpsEvent",
    "MLOpsGuardEventsError",
    "ModerationEvent",
    "ModerationEventType",
    "Settings",
    "SpoolError",
    "__version__",
    "config_events",
    "configure",
    "flush",
    "guard_events",
    "metric_creation_events",
    "metric_reporting_events",
    "moderation_events",
    "replay_spool",
    "report_moderation_event",
    "scoring_events",
    "shutdown",
    "stats",
]


def test_all_is_pinned_and_sorted() -> None:
    assert mlops_guard_events.__all__ == EXPECTED_NAMES
    assert sorted(mlops_guard_events.__all__) == mlops_guard_events.__all__


def test_every_public_name_resolves() -> None:
    for name in mlops_guard_events.__all__:
        assert getattr(mlops_guard_events, name) is not None, name


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        mlops_guard_events.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_delivery_errors_are_value_errors() -> None:
    assert issubclass(mlops_guard_events.EventDeliveryError, ValueError)
    assert issubclass(mlops_guard_events.EventRejectedError, mlops_guard_events.EventDeliveryError)
    assert issubclass(mlops_guard_events.ConfigurationError, ValueError)


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def test_import_loads_neither_requests_nor_wrapt() -> None:
    loaded = _modules_after("import mlops_guard_events")
    assert "requests" not in loaded
    assert "wrapt" not in loaded


def test_decorators_load_without_requests() -> None:
    loaded = _modules_after("from mlops_guard_events import guard_events")
    assert "wrapt" in loaded
    assert "requests" not in loaded


def test_decorators_defer_scrubbing_and_difflib() -> None:
    loaded = _modules_after("from mlops_guard_events import guard_events")
    assert "mlops_guard_events._scrub" not in loaded
    assert "difflib" not in loaded
