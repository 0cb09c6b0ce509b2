"""The Faust application (and only that): settings in, app out."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import faust
import mode

from stream_drift.app.faust_config import faust_settings
from stream_drift.app.runtime import Runtime
from stream_drift.config import Settings


class CommitWatch(faust.Sensor):
    """Records when a stage-2 (Faust) offset commit started and clears it when it is done,
    so ``/health`` can tell a commit that never finishes (aiokafka retries some errors
    forever, e.g. after the broker lost its state)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime

    def on_commit_initiated(self, consumer: Any) -> Any:
        self.runtime.health.stage2_commit_started = time.time()
        return None

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.runtime.health.stage2_commit_started = None


class StreamDriftApp(faust.App):
    """A Faust app with stage-1 services started beside its consumer.

    Services added with :meth:`add_child` start right after Faust's own producer and
    consumer (so the ingest group join overlaps Faust's) and stop before the producer (so the
    last batch can still be sent and committed).
    """

    runtime: Runtime

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._extra_children: list[mode.ServiceT] = []
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        # Faust's own driver, with a shorter consumer fetch wait (see faust_transport).
        from stream_drift.app.faust_transport import Transport

        return Transport(self.conf.broker_consumer, self)

    def add_child(self, service: mode.ServiceT) -> None:
        self._extra_children.append(service)

    def on_init_dependencies(self) -> Iterable[mode.ServiceT]:
        return [*super().on_init_dependencies(), *self._extra_children]


def create_app(settings: Settings) -> StreamDriftApp:
    """Build a worker's app: topics, table, stage 1, stage 2, references, web."""
    from stream_drift.app import agents, ingest, labels, references, tables, topics, web

    app = StreamDriftApp(
        **faust_settings(settings),
        web_bind=settings.web.host,
        web_enabled=True,
    )
    app.runtime = Runtime(settings)
    app.sensors.add(CommitWatch(app.runtime))
    t = topics.define(app, settings)
    state = tables.define(app, settings)
    agents.register(app, app.runtime, t, state)
    app.add_child(references.ReferenceFollower(app.runtime, t, loop=app.loop, beacon=app.beacon))
    app.add_child(ingest.IngestService(app.runtime, t, loop=app.loop, beacon=app.beacon))
    app.add_child(labels.LabelJoinService(app.runtime, loop=app.loop, beacon=app.beacon))
    web.register(app, app.runtime)
    return app
