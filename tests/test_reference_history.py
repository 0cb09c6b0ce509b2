"""``stream-drift reference history`` against the real (embedded) broker: every profile ever
published stays on ``drift.references`` under its own ``model/version/id`` key, and the one a
worker judges each version against is marked current.

Tansu neither compacts nor reports topic configs (KAFKA-LOCAL.md items 4 and 6): the tests
assert on what a reader does with the records and on the create call succeeding with the
configs, not on the broker dropping or describing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from kafka_helpers import describe_partitions, read_topic

from stream_drift.app.topics import partition_counts
from stream_drift.app.worker import prepare_topics
from stream_drift.cli import cli
from stream_drift.config import Settings
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port

pytestmark = pytest.mark.kafka

ROLES = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")


def _settings(broker: EmbeddedBroker) -> Settings:
    app = f"hist-{uuid.uuid4().hex[:8]}"
    return Settings().override(
        {
            "app_id": app,
            "kafka.bootstrap_servers": broker.bootstrap_servers,
            "kafka.connect_timeout_seconds": 10.0,
            "topics": {role: f"{app}.{role}" for role in ROLES},
        }
    )


def _profile(version: str, shift: float) -> ReferenceProfile:
    rng = np.random.default_rng(3)
    return build_reference(
        {"x": rng.normal(shift, 1.0, 400), "y": rng.uniform(0, 1, 400)},
        model="fraud",
        model_version=version,
    )


def _cli(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def test_history_lists_every_published_profile(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = _settings(kafka_broker)
    config = tmp_path / "stream-drift.yaml"
    config.write_text(settings.to_yaml())
    # The worker's creation call, with every topic's configs, succeeds on a real broker.
    prepare_topics(settings)
    names = list(partition_counts(settings))
    assert describe_partitions(kafka_broker.bootstrap_servers, names) == partition_counts(settings)

    a7, c8, b7 = _profile("7", 0.0), _profile("8", 1.0), _profile("7", 2.0)
    assert len({a7.id, b7.id, c8.id}) == 3
    before = datetime.now(UTC) - timedelta(seconds=5)
    for n, profile in enumerate((a7, c8, b7)):
        path = profile.save(tmp_path / f"ref{n}.json")
        code, out, err = _cli("reference", "publish", str(path), "-c", str(config))
        assert code == 0, err
    after = datetime.now(UTC) + timedelta(seconds=5)

    # Each distinct profile has its own key: compaction would keep all three.
    records = read_topic(kafka_broker.bootstrap_servers, settings.topics.references, min_records=3)
    assert [r.key for r in records] == [
        f"fraud/7/{a7.id}".encode(),
        f"fraud/8/{c8.id}".encode(),
        f"fraud/7/{b7.id}".encode(),
    ]
    # The follower's registry, fed in topic order, keeps the latest per version.
    registry = ReferenceRegistry()
    for r in records:
        assert r.value is not None
        registry.add(ReferenceProfile.from_dict(json.loads(r.value)))
    assert registry.lookup("fraud", "7").id == b7.id  # type: ignore[union-attr]
    assert registry.lookup("fraud", "8").id == c8.id  # type: ignore[union-attr]

    code, out, err = _cli("reference", "history", "--model", "fraud", "-c", str(config), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["model_version"], r["reference_id"], r["current"]) for r in rows] == [
        ("7", a7.id, False),
        ("8", c8.id, True),
        ("7", b7.id, True),
    ]
    for row, profile in zip(rows, (a7, c8, b7), strict=True):
        assert row["key"] == f"fraud/{profile.model_version}/{profile.id}"
        assert (row["n_rows"], row["n_series"]) == (400, 2)
        published = datetime.fromisoformat(row["published_at"])
        assert row["published_at"].endswith("Z") and before <= published <= after
    stamps = [r["published_at"] for r in rows]
    assert stamps == sorted(stamps)

    # Text: one line per profile; --version keeps one version.
    code, out, err = _cli(
        "reference", "history", "--model", "fraud", "--version", "7", "-c", str(config)
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert a7.id in lines[0] and not lines[0].endswith("current")
    assert b7.id in lines[1] and lines[1].endswith("current")
    assert "400 rows" in lines[1] and "2 series" in lines[1]

    code, out, err = _cli("reference", "history", "--model", "other", "-c", str(config))
    assert code == 0 and out == ""
    assert "no profile published for other" in err


def test_history_without_a_broker_is_one_line_and_exit_2() -> None:
    port = find_free_port()  # nobody listens there
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_drift.cli",
            "reference",
            "history",
            "--model",
            "fraud",
            "--bootstrap",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "STREAM_DRIFT_KAFKA__CONNECT_TIMEOUT_SECONDS": "3"},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], done.stderr
