"""The settings as Faust wants them: ``faust.App`` keyword arguments and broker credentials.

Examples
--------
>>> from stream_drift.config import Settings
>>> kw = faust_settings(Settings().override({"kafka.bootstrap_servers": "a:9092,b:9093"}))
>>> kw["id"], kw["broker"], kw["topic_partitions"], kw["store"]
('stream-drift', 'kafka://a:9092,b:9093', 4, 'memory://')
>>> kw["broker_credentials"] is None  # PLAINTEXT
True
"""

from __future__ import annotations

import ssl
from typing import Any

from faust.auth import SASLCredentials

from stream_drift.config import ConfigError, KafkaSettings, Settings

__all__ = ["broker_credentials", "faust_settings"]


def broker_credentials(kafka: KafkaSettings) -> ssl.SSLContext | SASLCredentials | None:
    """Faust's ``broker_credentials``, built from :meth:`KafkaSettings.client_kwargs`:
    ``None`` (PLAINTEXT), a TLS context (SSL) or ``faust.SASLCredentials`` (SASL_*).

    Raises
    ------
    ConfigError
        When a TLS file cannot be loaded.
    """
    kwargs = kafka.client_kwargs()
    context: ssl.SSLContext | None = kwargs.get("ssl_context")
    if not kafka.uses_sasl:
        return context
    return SASLCredentials(
        username=kwargs["sasl_plain_username"],
        password=kwargs["sasl_plain_password"],
        mechanism=kwargs["sasl_mechanism"],
        ssl_context=context,
    )


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App(...)``.

    Raises
    ------
    ConfigError
        When ``kafka.bootstrap_servers`` is ``embedded``: start the broker first, then
        ``settings.override({"kafka.bootstrap_servers": address})``.
    """
    if settings.kafka.embedded:
        raise ConfigError(
            [
                "kafka.bootstrap_servers: is 'embedded'; start the embedded broker and "
                "override this key with its host:port before building the Faust app"
            ]
        )
    kafka = settings.kafka
    return {
        "broker_credentials": broker_credentials(kafka),
        "id": settings.app_id,
        "broker": "kafka://" + ",".join(kafka.servers),
        "broker_session_timeout": kafka.session_timeout_seconds,
        "broker_heartbeat_interval": kafka.heartbeat_interval_seconds,
        "broker_rebalance_timeout": kafka.rebalance_timeout_seconds,
        "producer_max_batch_size": kafka.producer_max_batch_size,
        "producer_max_request_size": kafka.producer_max_request_bytes,
        "web_host": settings.web.host,
        "web_port": settings.web.port,
        "store": "memory://",
        "topic_partitions": settings.topics.partitions.partials,
        "topic_replication_factor": settings.topics.replication_factor,
        "datadir": settings.worker.data_dir,
    }
