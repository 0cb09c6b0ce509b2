"""``stream-drift topics create``: every topic with its partition count, against the real
broker; one line and exit status 2 when the broker cannot be reached."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka_helpers import describe_partitions

from stream_drift.config import Settings
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port

pytestmark = pytest.mark.kafka

ROLES = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_create_makes_every_topic_with_its_partitions(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    app = f"topics-{uuid.uuid4().hex[:8]}"
    settings = Settings().override(
        {
            "app_id": app,
            "topics": {role: f"{app}.{role}" for role in ROLES},
            "topics.partitions": {"events": 6, "partials": 3},
        }
    )
    config = tmp_path / "stream-drift.yaml"
    config.write_text(settings.to_yaml())
    first = run(
        "topics", "create", "-c", str(config), "--bootstrap", kafka_broker.bootstrap_servers
    )
    assert first.returncode == 0, first.stderr
    assert f"{app}.events (6 partitions)" in first.stdout
    names = [f"{app}.{role}" for role in ROLES]
    counts = describe_partitions(kafka_broker.bootstrap_servers, names)
    p = settings.topics.partitions
    assert counts == {
        f"{app}.events": 6,
        f"{app}.labels": p.labels,
        f"{app}.partials": 3,
        f"{app}.alerts": p.alerts,
        f"{app}.results": p.results,
        f"{app}.references": p.references,
        f"{app}.deadletter": p.deadletter,
    }
    again = run(
        "topics", "create", "-c", str(config), "--bootstrap", kafka_broker.bootstrap_servers
    )
    assert again.returncode == 0, again.stderr  # idempotent


def test_topics_create_without_a_broker_is_one_line_and_exit_2() -> None:
    port = find_free_port()  # nobody listens there
    done = run("topics", "create", "--bootstrap", f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], done.stderr
