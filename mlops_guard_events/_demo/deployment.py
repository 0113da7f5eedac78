"""An in-memory stand-in for a DataRobot deployment's custom-metrics API.

It behaves the way the demo needs the real one to misbehave: it contains at most
`max_custom_metrics` metrics, rejects a second metric with the same name, rejects invalid
units, and fails the upload of chosen batches of metric values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

__all__ = [
    "CustomMetricConflictError",
    "CustomMetricLimitError",
    "CustomMetricsUnavailableError",
    "DemoDeployment",
]

VALID_UNITS: Final = frozenset({"count", "percent", "seconds"})


class CustomMetricConflictError(ValueError):
    """A custom metric with this name exists already ("not unique for deployment")."""


class CustomMetricLimitError(ValueError):
    """The deployment has its maximum number of custom metrics."""


class CustomMetricsUnavailableError(ConnectionError):
    """The custom-metrics service did not accept an upload."""


class DemoDeployment:
    """A deployment with custom metrics, as the demo's pipeline uses it.

    Args:
        deployment_id: The deployment's ID.
        max_custom_metrics: The maximum number of custom metrics the deployment may have.
        existing_metrics: Names of the custom metrics it has already.
        failing_batches: Numbers (counted from 1) of the uploads that fail.
    """

    def __init__(
        self,
        deployment_id: str,
        *,
        max_custom_metrics: int,
        existing_metrics: Iterable[str],
        failing_batches: Iterable[int],
    ) -> None:
        self.deployment_id = deployment_id
        self.max_custom_metrics = max_custom_metrics
        self.metrics: dict[str, str] = dict.fromkeys(existing_metrics, "count")
        self.uploaded: list[Mapping[str, float]] = []
        self._failing_batches = frozenset(failing_batches)
        self._uploads = 0

    def create_custom_metric(self, name: str, *, units: str) -> None:
        """Create the custom metric `name`, measured in `units`.

        Raises:
            CustomMetricConflictError: A metric with this name exists.
            CustomMetricLimitError: The deployment has `max_custom_metrics` metrics.
            ValueError: `units` is not one of `VALID_UNITS`.
        """
        if name in self.metrics:
            raise CustomMetricConflictError(
                f"custom metric {name!r} is not unique for deployment {self.deployment_id}"
            )
        if len(self.metrics) >= self.max_custom_metrics:
            raise CustomMetricLimitError(
                f"deployment {self.deployment_id} has reached the maximum number of custom"
                f" metrics ({self.max_custom_metrics}); delete unused ones to add more"
            )
        if units not in VALID_UNITS:
            raise ValueError(
                f"invalid units {units!r} for custom metric {name!r}: expected one of"
                f" {', '.join(sorted(VALID_UNITS))}"
            )
        self.metrics[name] = units

    def upload(self, rows: Sequence[Mapping[str, float]]) -> None:
        """Store a batch of metric values, one row per prompt.

        Raises:
            CustomMetricsUnavailableError: This batch is one of `failing_batches`.
            KeyError: A row names a metric the deployment does not have.
        """
        self._uploads += 1
        if self._uploads in self._failing_batches:
            raise CustomMetricsUnavailableError(
                f"upload of custom metric values to deployment {self.deployment_id} failed:"
                " HTTP 503 Service Unavailable"
            )
        for row in rows:
            unknown = sorted(set(row) - set(self.metrics))
            if unknown:
                raise KeyError(f"unknown custom metrics {', '.join(unknown)}")
        self.uploaded.extend(rows)
