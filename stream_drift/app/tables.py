"""Stage 2's state: one row per model, backed by a changelog topic."""

from __future__ import annotations

from typing import Any

import faust

from stream_drift.config import Settings

STATE_TABLE = "model-state"


def define(app: faust.App, settings: Settings) -> Any:
    """The table of :class:`~stream_drift.pipeline.evaluator.ModelEvaluator` snapshots by model.

    Co-partitioned with ``drift.partials`` (same key, same partition count), so the worker
    that owns a model's partials partition owns its state.
    """
    return app.Table(
        STATE_TABLE,
        default=None,
        key_type=str,
        partitions=settings.topics.partitions.partials,
    )
