"""Report DataRobot moderation events from LLM guards and custom-metric calls.

Decorators and context managers (`guard_events`, `metric_creation_events`, ...) report an event
when the guarded code raises, times out or blocks, without changing what it returns or raises.
`report_moderation_event` and `MLOpsEvent` match the official `datarobot` client's call.

Names are loaded on first use, so `import mlops_guard_events` stays cheap for code that only
imports it.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# Importing `typing` would take longer than the rest of this module, about 7 ms of 8 ms on
# CPython 3.11. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._config import Settings, configure
    from ._event import ModerationEvent, ModerationEventType
    from ._report import MLOpsEvent, report_moderation_event
    from ._reporting import (
        config_events,
        guard_events,
        metric_creation_events,
        metric_reporting_events,
        moderation_events,
        scoring_events,
    )
    from ._scope import EventReporter, EventScope
    from ._stats import stats
    from ._worker import flush, replay_spool, shutdown
    from .exceptions import (
        ConfigurationError,
        EventDeliveryError,
        EventRejectedError,
        EventRetryableError,
        MLOpsGuardEventsError,
        SpoolError,
    )

__all__ = [
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

_MODULE_OF: dict[str, str] = {
    "Settings": "._config",
    "configure": "._config",
    "ModerationEvent": "._event",
    "ModerationEventType": "._event",
    "MLOpsEvent": "._report",
    "report_moderation_event": "._report",
    "EventReporter": "._scope",
    "EventScope": "._scope",
    "config_events": "._reporting",
    "guard_events": "._reporting",
    "metric_creation_events": "._reporting",
    "metric_reporting_events": "._reporting",
    "moderation_events": "._reporting",
    "scoring_events": "._reporting",
    "stats": "._stats",
    "flush": "._worker",
    "replay_spool": "._worker",
    "shutdown": "._worker",
    "ConfigurationError": ".exceptions",
    "EventDeliveryError": ".exceptions",
    "EventRejectedError": ".exceptions",
    "EventRetryableError": ".exceptions",
    "MLOpsGuardEventsError": ".exceptions",
    "SpoolError": ".exceptions",
}


def __getattr__(name: str) -> Any:
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
