"""The work of ``stream-drift alerts``: follow the alerts topic and print each alert, or, with
``--exec``/``--webhook``, act on the triggering ones in a consumer group (the actions
themselves are in :mod:`stream_drift.tools.trigger`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from stream_drift.app.kafka_io import follow, open_group_consumer, read_records
from stream_drift.pipeline.alert_record import decode_alert
from stream_drift.pipeline.alert_text import format_alert_line
from stream_drift.tools.trigger import (
    KILL_GRACE_SECONDS,
    AlertFilter,
    Attempt,
    HandledKeys,
    alert_env,
    alert_fields,
    alert_key,
    backoff_delays,
    deliver,
    post_webhook,
    run_command,
)

if TYPE_CHECKING:
    from aiokafka.structs import TopicPartition

    from stream_drift.config import Settings
    from stream_drift.pipeline.alert_record import Alert


async def print_alerts(
    bootstrap: str,
    topic: str,
    *,
    as_json: bool,
    from_beginning: bool,
    idle_exit: float | None,
    security: Mapping[str, Any],
    connect_timeout: float,
) -> None:
    """Print each alert of ``topic`` as one readable line (``as_json``: as it is), until
    ``idle_exit`` seconds pass without one (``None``: until interrupted)."""
    async for record in follow(
        bootstrap,
        topic,
        from_beginning=from_beginning,
        idle_timeout=idle_exit,
        security=security,
        connect_timeout=connect_timeout,
    ):
        text = record.value.decode("utf-8", "replace")
        if as_json:
            click.echo(text)
            continue
        try:
            click.echo(format_alert_line(decode_alert(text)))
        except ValueError:
            click.echo(f"(unreadable alert) {text}")


@dataclass(frozen=True)
class TriggerOptions:
    """What ``alerts --exec/--webhook`` does with a triggering alert."""

    command: str | None
    webhook: str | None
    exec_timeout: float
    webhook_timeout: float
    retries: int
    selection: AlertFilter


def _log(message: str, prefix: str = "") -> None:
    click.echo(f"alerts: {prefix}{message}", err=True)


def act_once(options: TriggerOptions, alert: Alert | dict[str, Any], payload: bytes) -> str | None:
    """Run each action of ``options`` for one alert, with retries (blocking: in a thread).

    Returns ``None`` on success, else what failed."""
    fields = alert_fields(alert)
    ident = f"alert {fields.get('alert_id', '?')} ({fields.get('status', '?')})"
    actions: list[tuple[str, Callable[[], Attempt]]] = []
    if options.command is not None:
        command, env = options.command, alert_env(alert)
        actions.append(
            ("command", lambda: run_command(command, payload, env, options.exec_timeout))
        )
    if options.webhook is not None:
        url = options.webhook
        actions.append(("webhook", lambda: post_webhook(url, payload, options.webhook_timeout)))
    for name, action in actions:
        result, tries = deliver(
            action, backoff_delays(options.retries), log=partial(_log, prefix=f"{ident}: {name} ")
        )
        if not result.ok:
            return f"{name} failed {tries} time(s), last: {result.detail}"
        _log(f"{ident}: {name} succeeded ({result.detail}, attempt {tries})")
    return None


async def act_on_alerts(
    settings: Settings,
    address: str,
    security: Mapping[str, Any],
    options: TriggerOptions,
    *,
    group: str,
    from_beginning: bool,
    idle_exit: float | None,
) -> int:
    """Follow the alerts topic in consumer group ``group`` and act on each triggering alert.

    One record at a time: its offset is committed after the actions succeeded (or the record
    was skipped: filtered out, unreadable, already handled). Returns the exit status: 0 at
    ``idle_exit``, 1 when an action failed after its retries (offset not committed)."""
    from aiokafka.structs import TopicPartition

    one_try = options.exec_timeout + KILL_GRACE_SECONDS + options.webhook_timeout
    busy = one_try * (options.retries + 1) + sum(backoff_delays(options.retries))
    consumer = await open_group_consumer(
        address,
        settings.topics.alerts,
        group,
        from_beginning=from_beginning,
        session_timeout=settings.kafka.session_timeout_seconds,
        heartbeat_interval=settings.kafka.heartbeat_interval_seconds,
        rebalance_timeout=settings.kafka.rebalance_timeout_seconds,
        max_poll_interval=busy + 60,
        security=security,
        connect_timeout=settings.kafka.connect_timeout_seconds,
    )
    handled = HandledKeys()
    floors: dict[TopicPartition, int | None] = {}
    _log(f"following {settings.topics.alerts} in group {group}")
    # Joining the group may wait for a departed member's session to expire: idle time counts
    # from the assignment, or after this grace.
    join_grace = settings.kafka.session_timeout_seconds + settings.kafka.rebalance_timeout_seconds
    try:
        records = read_records(
            consumer, idle_timeout=idle_exit, join_grace=join_grace, max_records=1
        )
        async for record in records:
            tp = TopicPartition(record.topic, record.partition)
            where = f"{tp.topic}[{tp.partition}]@{record.offset}"
            if tp not in floors:
                floors[tp] = await consumer.committed(tp)
            floor = floors[tp]
            if floor is not None and record.offset < floor:
                _log(f"{where}: below the committed offset {floor} (a replay), skipped")
                continue
            try:
                alert = decode_alert(record.value)
            except (ValueError, TypeError) as exc:
                _log(f"{where}: unreadable alert skipped ({exc}): {record.value!r:.200}")
                await consumer.commit({tp: record.offset + 1})
                continue
            key = alert_key(alert)
            skip = options.selection.reason_to_skip(alert)
            if key in handled:
                skip = "already handled"
            if skip is None:
                failure = await asyncio.to_thread(act_once, options, alert, bytes(record.value))
                if failure is not None:
                    _log(
                        f"ERROR {where} alert {key[0]} ({key[1]}): {failure}; "
                        "offset NOT committed, exiting with status 1 "
                        "(the next start tries this alert again)"
                    )
                    return 1
                handled.add(key)
            else:
                _log(f"{where}: alert {key[0]} ({key[1]}) not acted on: {skip}")
            await consumer.commit({tp: record.offset + 1})
        return 0
    finally:
        await consumer.stop()
