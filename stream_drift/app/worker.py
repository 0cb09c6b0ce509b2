"""Run a worker: create the topics, build the app, hand it to Faust's worker."""

from __future__ import annotations

import logging

from stream_drift.config import Settings

log = logging.getLogger(__name__)


def prepare_topics(settings: Settings) -> None:
    """Create every topic with its partition count and configs (``cleanup.policy``,
    ``retention.ms``: :func:`stream_drift.app.topics.topic_configs`); idempotent, an existing
    topic is left as it is. Tansu would otherwise auto-create them with one partition on first
    use (KAFKA-LOCAL.md §6)."""
    from stream_drift.app import admin
    from stream_drift.app.topics import partition_counts, topic_configs

    admin.create_topics_sync(
        ",".join(settings.kafka.servers),
        partition_counts(settings),
        configs=topic_configs(settings),
        replication_factor=settings.topics.replication_factor,
        security=settings.kafka.client_kwargs(),
    )


def run_worker(settings: Settings) -> None:
    """Block running one worker until SIGTERM / SIGINT."""
    from faust import Worker
    from prometheus_client import disable_created_metrics

    from stream_drift.app.app import create_app

    # One sample per series: the *_created companions only double what is scraped.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    if settings.topics.create:
        prepare_topics(settings)
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.worker.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


def create_topics_once(settings: Settings) -> dict[str, int]:
    """``stream-drift topics create``: :func:`prepare_topics`, a failure told in one line.

    Returns
    -------
    dict[str, int]
        Partition count by topic name.

    Raises
    ------
    stream_drift.app.kafka_io.ClientCommandError
        When the broker refused a topic or did not answer in time.
    """
    from aiokafka.errors import KafkaError

    from stream_drift.app.kafka_io import ClientCommandError
    from stream_drift.app.topics import partition_counts

    try:
        prepare_topics(settings)
    except (KafkaError, OSError, TimeoutError) as exc:
        servers = ",".join(settings.kafka.servers)
        raise ClientCommandError(f"Kafka at {servers}: cannot create the topics: {exc}") from exc
    return partition_counts(settings)
