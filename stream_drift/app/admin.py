"""The worker's Kafka admin calls: create the app's topics, look up a topic's partitions.

Every call takes ``security``, the keyword arguments of
:meth:`stream_drift.config.KafkaSettings.client_kwargs` (TLS, SASL; ``None`` is PLAINTEXT).
Tansu accepts topic configs without enforcing them, and auto-creates a topic named in a
metadata request: :func:`partition_ids` asks for every topic, never for one by name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

__all__ = [
    "TopicNotFoundError",
    "create_topics",
    "create_topics_sync",
    "partition_ids",
    "topic_request_configs",
]

#: Kafka error code for "topic already exists" (CreateTopics response).
_TOPIC_ALREADY_EXISTS = 36


class TopicNotFoundError(RuntimeError):
    """The broker does not list the topic.

    Examples
    --------
    >>> str(TopicNotFoundError("drift.alerts"))
    "topic 'drift.alerts' not found"
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"topic {topic!r} not found")


@contextlib.asynccontextmanager
async def _admin_client(
    bootstrap_servers: str, timeout: float, security: Mapping[str, Any] | None
) -> AsyncIterator[Any]:
    """A started admin client, closed on the way out (also when starting it failed)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **dict(security or {}),
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
        yield admin
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), timeout=5)


def topic_request_configs(
    name: str,
    compacted: Iterable[str] = (),
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """The configs :func:`create_topics` sends for topic ``name`` (what the admin call gets).

    Parameters
    ----------
    name : str
        Topic name.
    compacted : Iterable[str]
        Names created with ``cleanup.policy=compact`` (overrides ``configs``).
    configs : Mapping[str, Mapping[str, str]] or None
        Topic configs by name.

    Returns
    -------
    dict[str, str]
        Config name to value, as strings.

    Examples
    --------
    >>> topic_request_configs("r", ["r"], {"r": {"retention.ms": "-1"}})
    {'retention.ms': '-1', 'cleanup.policy': 'compact'}
    """
    out = {str(k): str(v) for k, v in (configs or {}).get(name, {}).items()}
    if name in set(compacted):
        out["cleanup.policy"] = "compact"
    return out


async def create_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    compacted: Iterable[str] = (),
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication_factor: int = 1,
    timeout: float = 30.0,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Create topics with explicit partition counts and configs; existing topics are left alone
    (their configs are not changed).

    Parameters
    ----------
    bootstrap_servers : str
        ``"host:port[,host:port]"``.
    topics : Mapping[str, int]
        Topic name to number of partitions.
    compacted : Iterable[str]
        Names (from ``topics``) created with ``cleanup.policy=compact``. Tansu
        accepts the setting and does not compact.
    configs : Mapping[str, Mapping[str, str]] or None
        Topic configs by name (from ``topics``), e.g. ``{"drift.results": {"retention.ms":
        "-1"}}`` (:meth:`stream_drift.config.TopicsSettings.topic_configs`); a ``compacted``
        topic gets ``cleanup.policy=compact`` on top. Tansu accepts them and enforces none.
    replication_factor : int
        Replicas per partition (1 for a single broker).
    timeout : float
        Seconds allowed for the whole operation.
    security : Mapping[str, Any] or None
        TLS/SASL keyword arguments of the admin client,
        :meth:`stream_drift.config.KafkaSettings.client_kwargs`; ``None`` is PLAINTEXT.

    Raises
    ------
    ValueError
        If ``compacted`` or ``configs`` names a topic that is not in ``topics``.
    aiokafka.errors.KafkaError
        If the broker rejects a topic for any reason other than "already exists".
    TimeoutError
        If the broker does not answer within ``timeout``.
    """
    from aiokafka.admin import NewTopic
    from aiokafka.errors import for_code

    compact = set(compacted)
    unknown = compact - set(topics)
    if unknown:
        raise ValueError(f"compacted topics not in topics: {sorted(unknown)}")
    unknown = set(configs or {}) - set(topics)
    if unknown:
        raise ValueError(f"configs of topics not in topics: {sorted(unknown)}")
    if not topics:
        return
    new_topics = [
        NewTopic(
            name=name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            topic_configs=topic_request_configs(name, compact, configs),
        )
        for name, partitions in topics.items()
    ]
    async with (
        asyncio.timeout(timeout),
        _admin_client(bootstrap_servers, timeout, security) as admin,
    ):
        response = await admin.create_topics(new_topics, timeout_ms=int(timeout * 1000))
    for error in response.topic_errors:
        topic, code = error[0], error[1]
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            message = error[2] if len(error) > 2 and error[2] else ""
            raise for_code(code)(f"creating topic {topic!r}: {message}".rstrip(": "))


def create_topics_sync(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    security: Mapping[str, Any] | None = None,
    **options: Any,
) -> None:
    """Blocking :func:`create_topics` (runs its own event loop), with the same parameters.

    Must not be called from a running event loop; ``await create_topics(...)`` there instead.
    """
    asyncio.run(create_topics(bootstrap_servers, topics, security=security, **options))


async def partition_ids(
    bootstrap_servers: str,
    topic: str,
    *,
    wait: float = 5.0,
    timeout: float = 30.0,
    security: Mapping[str, Any] | None = None,
) -> list[int]:
    """Partition ids of a topic, from the broker's metadata.

    Asks for the metadata of every topic (naming the topic would make Tansu create it) until
    the topic is listed, for at most ``wait`` seconds: a topic just created may take a moment
    to appear.

    Parameters
    ----------
    bootstrap_servers : str
        ``"host:port[,host:port]"``.
    topic : str
        The topic.
    wait : float
        Seconds to wait for the topic to be listed.
    timeout : float
        Seconds allowed for connecting.
    security : Mapping[str, Any] or None
        TLS/SASL keyword arguments of the admin client; ``None`` is PLAINTEXT.

    Returns
    -------
    list[int]
        The partition ids, sorted.

    Raises
    ------
    TopicNotFoundError
        When the topic is still not listed after ``wait`` seconds.
    """
    async with _admin_client(bootstrap_servers, timeout, security) as admin:
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            for described in await admin.describe_topics():
                if described["topic"] == topic and described["error_code"] == 0:
                    found = sorted(p["partition"] for p in described["partitions"])
                    if found:
                        return found
            if asyncio.get_running_loop().time() >= deadline:
                raise TopicNotFoundError(topic)
            await asyncio.sleep(0.1)
