"""What a worker shares between its services, agents and web views."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from stream_drift.app.health import Health
from stream_drift.app.metrics import DriftMetrics
from stream_drift.config import Settings
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.pipeline.registry import ReferenceRegistry, WarmupCollector

LAG_GROWING_SECONDS = 60.0
"""Stage 1 is *falling behind* when its consumer lag has stayed above zero for this long and
is higher than it was this long ago (``/health`` then reports ``degraded``)."""


@dataclass
class Runtime:
    """Settings plus the live objects built from them."""

    settings: Settings
    registry: ReferenceRegistry = field(default_factory=ReferenceRegistry)
    prometheus: CollectorRegistry = field(default_factory=CollectorRegistry)
    references_ready: asyncio.Event = field(default_factory=asyncio.Event)
    health: Health = field(default_factory=Health)
    _lag_samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self.metrics = DriftMetrics(self.prometheus, max_series=self.settings.metrics.max_series)
        self.windows = self.settings.window
        if self.windows.kind == "time":
            self.metrics.set_window_policy(self.windows.size_seconds, self.windows.step_seconds)
        self.decision = self.settings.decision
        self.alerts = self.settings.alerts
        for path in self.settings.references.files:
            self.registry.add(ReferenceProfile.load(path))

    def note_consumer_lag(self, total: int, now: float) -> None:
        """Record the stage-1 consumer lag (records, summed over the owned partitions).

        Sets ``health.consumer_lag_records`` and ``health.consumer_lag_at``, and
        ``health.consumer_lag_growing_since`` (the start of the current run of non-zero lag)
        while the lag has been above zero for :data:`LAG_GROWING_SECONDS` and is higher than
        it was that long ago; a consumer that keeps up, or is catching up on a backlog, never
        has it.

        Parameters
        ----------
        total
            Records between the high-water marks and the next offsets to ingest.
        now
            Epoch seconds of the measurement.

        Examples
        --------
        >>> rt = Runtime(Settings())
        >>> for t, lag in [(0, 100), (30, 900), (61, 2000)]:
        ...     rt.note_consumer_lag(lag, float(t))
        >>> rt.health.consumer_lag_records, rt.health.consumer_lag_growing_since
        (2000, 0.0)
        >>> rt.note_consumer_lag(0, 62.0)
        >>> print(rt.health.consumer_lag_growing_since)
        None
        """
        self.health.consumer_lag_records = total
        self.health.consumer_lag_at = now
        samples = self._lag_samples
        if total <= 0:
            samples.clear()  # caught up: a new run starts with the next non-zero lag
            self.health.consumer_lag_growing_since = None
            return
        samples.append((now, total))
        # Keep the run's first sample and the newest one at or before now - LAG_GROWING_SECONDS.
        while len(samples) > 2 and samples[2][0] <= now - LAG_GROWING_SECONDS:
            del samples[1]
        first_at = samples[0][0]
        then = [lag for at, lag in samples if at <= now - LAG_GROWING_SECONDS]
        self.health.consumer_lag_growing_since = first_at if then and total > then[-1] else None

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
            n,
            fine_bins=d.fine_bins,
            coarse_bins=d.psi_bins,
            top_categories=d.top_categories,
            max_models=self.settings.references.warmup_max_models,
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
