"""What a worker shares between its services, agents and web views."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from stream_drift.alerts import AlertPolicy
from stream_drift.config import Settings
from stream_drift.evaluator import DecisionPolicy, WindowPolicy
from stream_drift.events import EventDecoder
from stream_drift.metrics import DriftMetrics
from stream_drift.reference import ReferenceProfile
from stream_drift.registry import ReferenceRegistry, WarmupCollector
from stream_drift.stats.base import Statistic
from stream_drift.stats.evaluate import STATISTICS


def build_statistics(settings: Settings) -> list[Statistic]:
    """The configured statistics with the configured thresholds."""
    d = settings.decision
    out = []
    for name in d.statistics:
        params: dict[str, object] = {
            "false_alarm_rate": d.false_alarm_rate,
            "min_samples": d.min_samples,
        }
        if name in d.thresholds:
            params["threshold"] = d.thresholds[name]
        if name in d.min_effect:
            params["min_effect"] = d.min_effect[name]
        out.append(STATISTICS[name](**params))  # type: ignore[arg-type]
    return out


def window_policy(settings: Settings) -> WindowPolicy:
    w = settings.window
    return WindowPolicy(
        kind=w.kind,
        size_seconds=float(w.size_seconds),
        step_seconds=float(w.step_seconds),
        allowed_lateness_seconds=float(w.allowed_lateness_seconds),
        idle_timeout_seconds=float(w.idle_timeout_seconds),
        count_size=w.count_size,
        count_step=w.count_step,
    )


def decision_policy(settings: Settings) -> DecisionPolicy:
    a = settings.alerts
    alert_kwargs: dict[str, object] = {
        "fire_after": a.fire_after,
        "resolve_after": a.resolve_after,
        "resolve_ratio": a.resolve_ratio,
        "cooldown_seconds": float(a.cooldown_seconds),
        "runbook_base_url": a.runbook_base_url,
    }
    return DecisionPolicy(
        statistics=build_statistics(settings),
        alert_on=tuple(settings.decision.alert_on),
        correction=settings.decision.correction,
        alerts=AlertPolicy(**alert_kwargs),  # type: ignore[arg-type]
    )


@dataclass
class Runtime:
    """Settings plus the live objects built from them."""

    settings: Settings
    registry: ReferenceRegistry = field(default_factory=ReferenceRegistry)
    prometheus: CollectorRegistry = field(default_factory=CollectorRegistry)
    references_ready: asyncio.Event = field(default_factory=asyncio.Event)
    health: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics = DriftMetrics(self.prometheus, max_series=self.settings.metrics.max_series)
        self.windows = window_policy(self.settings)
        if self.windows.kind == "time":
            self.metrics.set_window_policy(self.windows.size_seconds, self.windows.step_seconds)
        self.decision = decision_policy(self.settings)
        for path in self.settings.references.files:
            self.registry.add(ReferenceProfile.load(path))

    def decoder(self) -> EventDecoder:
        known = self.settings.ingest.known_models
        return EventDecoder(
            max_message_bytes=self.settings.ingest.max_message_bytes,
            known_models=known or None,
        )

    def warmup(self) -> WarmupCollector | None:
        n = self.settings.references.warmup_events
        if n <= 0:
            return None
        d = self.settings.decision
        return WarmupCollector(
            n, fine_bins=d.fine_bins, coarse_bins=d.psi_bins, top_categories=d.top_categories
        )

    async def wait_for_reference(self, reference_id: str, timeout: float) -> bool:
        """Wait until a reference id is known (published by another worker just now)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.registry.by_id(reference_id) is None:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True
