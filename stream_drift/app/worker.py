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
    from stream_drift.app.topics import partition_counts, topic_configs
    from stream_drift.tools.embedded import create_topics_sync

    create_topics_sync(
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
