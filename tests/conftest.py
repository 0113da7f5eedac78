"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops_guard_events import _config, _report, _stats, _worker
from mlops_guard_events._receiver import RemoteEventsReceiver


@pytest.fixture
def receiver() -> Iterator[RemoteEventsReceiver]:
    """Yield a running receiver on a free 127.0.0.1 port, with no token and no faults."""
    with RemoteEventsReceiver() as running:
        yield running


@pytest.fixture(autouse=True)
def isolated_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Keep settings, the event log and the spool of each test away from the real environment.

    The DataRobot variables are removed, the state directory and the default config file point
    into a fresh temporary directory, and the explicit call's cached connections are closed
    afterwards so that no socket or worker outlives its test.
    """
    for variable in (
        _config.ENV_ENDPOINT,
        _config.ENV_API_TOKEN,
        _config.ENV_DEPLOYMENT_ID,
        _config.ENV_SSL_VERIFY,
        _config.ENV_MAX_RETRIES,
        _config.ENV_CONFIG_FILE,
        _config.ENV_ALLOW_INSECURE_HTTP,
    ):
        monkeypatch.delenv(variable, raising=False)
    state_dir = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(_config.ENV_STATE_DIR, str(state_dir))
    monkeypatch.setattr(_config, "DEFAULT_CONFIG_FILE", state_dir / "absent-drconfig.yaml")
    _config.reset_settings()
    yield
    # A test that delivered for real leaves a worker bound to its settings; stop it so the
    # next test starts with none.
    _worker.shutdown(timeout=0)
    _report.close_transport()
    _config.reset_settings()


@pytest.fixture
def fresh_worker() -> Iterator[None]:
    """Start a test with no background worker and counters at zero; stop the worker after it.

    The worker and its queue are process-wide, so a test that delivers events must not see the
    worker, queue or counters of the test before it.
    """
    _worker.shutdown(timeout=0)
    _stats.reset_counters()
    # The worker logs each kind of failure at most once a minute, process-wide, so a test that
    # asserts on such a record must not depend on what an earlier test logged.
    _worker._throttle.reset()
    yield
    _worker.shutdown(timeout=0)
