"""Shared pytest fixtures.

``kafka_broker``: one embedded Tansu broker per test session, on a free loopback
port, stopped by its PID at the end. Tests that use it carry ``@pytest.mark.kafka``
(deselect them with ``-m "not kafka"``). Use a unique topic name per test
(``unique_topic``): the broker is shared by the whole session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

# tests/ is on sys.path (pytest's default "prepend" import mode, no __init__.py).
from kafka_helpers import describe_partitions, produce, read_topic, running

from stream_drift.tools.embedded import EmbeddedBroker

__all__ = ["describe_partitions", "produce", "read_topic"]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A started :class:`EmbeddedBroker` shared by the session; its log is in the tmp dir."""
    log_path = tmp_path_factory.mktemp("kafka") / "tansu.log"
    with running(EmbeddedBroker(log_path=log_path)) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: EmbeddedBroker) -> str:
    """``"127.0.0.1:PORT"`` of the session broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Factory of topic names unique to this test: ``unique_topic("events")``."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]

    def make(base: str = "t") -> str:
        return f"{base}.{test}.{uuid.uuid4().hex[:8]}"

    return make
