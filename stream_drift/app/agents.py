"""Stage 2 agent (decode → update → decide → emit) and the tick timer."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import faust
import msgspec

from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.pipeline.evaluator import Emitted, ModelEvaluator
from stream_drift.pipeline.labels import LabelOutcomes
from stream_drift.pipeline.model_quality import QualityPolicies
from stream_drift.pipeline.partials import Tick, decode_message
from stream_drift.stats.result import Severity

log = logging.getLogger(__name__)

REFERENCE_WAIT_SECONDS = 15.0


class EvaluatorCache:
    """Live evaluators of the models this worker owns; the table row is the durable copy.

    Emptied on every rebalance: a model that comes back may have moved on elsewhere, so it
    is rebuilt from the (recovered) table.
    """

    def __init__(self, runtime: Runtime, table: Any) -> None:
        self.runtime = runtime
        self.table = table
        self.live: dict[str, ModelEvaluator] = {}
        self.partition_of: dict[str, int] = {}
        self.owned: set[int] = set()
        self.taken_over: set[int] = set()
        """Owned partitions this worker took over (all, after a start)."""
        self.resumed: set[str] = set()
        """Models of those partitions whose sources were counted as heard at the takeover."""

    def get(self, model: str) -> ModelEvaluator:
        ev = self.live.get(model)
        if ev is None:
            saved = self.table.get(model)
            rt = self.runtime
            s = rt.settings
            quality = QualityPolicies(s.labels, s.concept, s.multivariate)
            if saved:
                ev = ModelEvaluator.from_dict(
                    saved, rt.registry, rt.windows, rt.decision, rt.alerts, quality
                )
                p = self.partition_of.get(model, saved.get("partition"))
                if p in self.taken_over and model not in self.resumed:
                    # No stage 2 listened to its sources since the last owner's end.
                    ev.resume(time.time())
                    self.resumed.add(model)
            else:
                ev = ModelEvaluator(model, rt.registry, rt.windows, rt.decision, rt.alerts, quality)
            self.live[model] = ev
        return ev

    def save(self, ev: ModelEvaluator) -> None:
        row = ev.to_dict()
        # Kept with the state, so a worker that takes the partition over knows which models
        # its ticks must move on even before their next partial arrives.
        row["partition"] = self.partition_of.get(ev.model)
        self.table[ev.model] = row

    def learn_partitions(self, owned: set[int]) -> None:
        """Map the recovered models of the partitions this worker owns now."""
        moved = owned ^ self.owned
        self.taken_over = (self.taken_over | owned - self.owned) & owned
        self.resumed = {m for m in self.resumed if self.partition_of.get(m) not in moved}
        self.owned = set(owned)
        for model, row in list(self.table.items()):
            p = row.get("partition") if isinstance(row, dict) else None
            if isinstance(p, int) and p in owned:
                self.partition_of.setdefault(model, p)

    def clear(self) -> None:
        # partition_of survives: a model's partition only changes with the partition count,
        # and ticks only arrive on the partitions this worker owns.
        self.live.clear()


def register(app: faust.App, runtime: Runtime, topics: Topics, table: Any) -> None:
    cache = EvaluatorCache(runtime, table)
    metrics = runtime.metrics

    async def emit(model: str, ev: ModelEvaluator, out: Emitted) -> None:
        if out.late_events:
            metrics.count_events(model, "late", out.late_events)
        for version, gauges in out.performance.items():
            metrics.set_performance(model, version, gauges)
        if out.concept_detections:
            detector = runtime.settings.concept.detector
            metrics.count_concept_detections(model, detector, out.concept_detections)
        for result in out.results:
            metrics.observe_evaluation(result.evaluation_seconds)
            await topics.results.send(
                key=model.encode(), value=json.dumps(result.to_dict()).encode()
            )
            for feature, evaluation in result.evaluations.items():
                metrics.set_window(
                    model,
                    result.model_version,
                    feature,
                    evaluation.n_current,
                    evaluation.missing_ratio,
                )
                for stat, r in evaluation.results.items():
                    state = (
                        ev.tracker.state(model, feature, stat)
                        if stat in (runtime.decision.deciding)
                        else Severity.OK
                    )
                    metrics.observe_result(model, result.model_version, feature, r, state)
            for feature, r in result.model_checks():
                state = ev.tracker.state(model, feature, r.statistic)
                metrics.observe_result(model, result.model_version, feature, r, state)
            quality = result.quality
            if quality is not None and quality.performance is not None:
                gauges = dict(quality.performance["metrics"])
                if quality.estimate is not None:  # the latest range, not the realised one's
                    gauges["expected_accuracy"] = quality.estimate["expected_accuracy"]
                metrics.set_performance(model, result.model_version, gauges)
            if quality is not None and quality.domain is not None:
                d = quality.domain
                metrics.set_domain_auc(model, result.model_version, d.value, d.threshold)
            metrics.mark_evaluated(model, result.evaluated_at)
        lag = ev.watermark_lag(time.time())
        if lag is not None:
            metrics.set_watermark_lag(model, lag)
        for alert in out.alerts:
            await topics.alerts.send(key=alert.dedup_key.encode(), value=msgspec.json.encode(alert))
            if alert.status in ("firing", "escalated"):
                metrics.count_alert(model, alert.severity)

    @app.agent(topics.partials, name=f"{runtime.settings.app_id}-evaluate")
    async def evaluate(stream: Any) -> None:
        async for event in stream.events():
            try:
                message = decode_message(event.value)
            except (ValueError, msgspec.DecodeError) as exc:
                log.error("skipping an unreadable partials message: %s", exc)
                continue
            now = time.time()
            partition = event.message.partition
            if isinstance(message, Tick):
                models = [m for m, p in cache.partition_of.items() if p == partition]
            elif isinstance(message, LabelOutcomes):
                models = [message.model]
                cache.partition_of[message.model] = partition
            else:
                models = [message.model]
                cache.partition_of[message.model] = partition
                if runtime.registry.by_id(message.reference_id) is None:
                    ok = await runtime.wait_for_reference(
                        message.reference_id, REFERENCE_WAIT_SECONDS
                    )
                    if not ok:
                        log.error(
                            "reference %s of %s unknown after %.0f s: %d events not evaluated",
                            message.reference_id,
                            message.model,
                            REFERENCE_WAIT_SECONDS,
                            message.n_events,
                        )
                        continue
            for model in models:
                ev = cache.get(model)
                out = ev.handle(message if not isinstance(message, Tick) else Tick(now), now)
                if not isinstance(message, Tick) or out.results:
                    cache.save(ev)
                await emit(model, ev, out)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        """Close idle models' windows on processing time: one tick per owned partition."""
        # /health turns to failing when a table recovery never ends (a rare Faust hang seen
        # after a takeover on Tansu), so the orchestrator restarts the worker.
        if getattr(app, "in_recovery", False):
            if runtime.health.recovering_since is None:
                runtime.health.recovering_since = time.time()
        else:
            runtime.health.recovering_since = None
        owned = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == runtime.settings.topics.partials
        }
        for partition in sorted(owned):
            await topics.partials.send(value=Tick(time.time()).to_bytes(), partition=partition)

    async def on_rebalance(sender: Any, *args: Any, **kwargs: Any) -> None:
        cache.clear()
        owned = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == runtime.settings.topics.partials
        }
        runtime.health.stage2_partitions = sorted(owned)
        cache.learn_partitions(owned)
        # Export only what this worker owns now; the new owners export the rest.
        metrics.retain_only(())

    app.on_rebalance_complete.connect(on_rebalance)  # type: ignore[arg-type]
