"""What a worker knows about its own health: one typed record, written by stage 1 (the ingest
service), stage 2 (agents, the commit sensor) and the runtime's lag tracking, and read by the
``/health`` views (:mod:`stream_drift.app.web`).

Every field is ``None`` until it is first known; the ``/health`` body holds only the known
ones, so a fresh worker's body has none of them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Health"]


class Health(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The worker's health figures: counts, partition numbers, timestamps, error texts.

    Never an event's feature values: the body of ``/health`` is :meth:`to_dict` as is.
    Timestamps are epoch seconds.

    Attributes
    ----------
    ingest
        ``"started"`` once the stage-1 consumer runs, ``"crashed"`` if its loop raised.
    ingest_partitions, stage2_partitions
        The partitions the stage-1 group (``<app_id>-ingest``) and the stage-2 group
        (``<app_id>``) assigned to this worker; set, possibly empty, once each group joined.
    ingest_loop_at
        When the ingest loop last started an iteration (a stuck loop stops updating it).
    first_batch_at, last_batch_at, records_consumed
        The first and latest non-empty stage-1 batch (when it was fetched), and the
        records read so far.
    last_batch_done_at
        When the latest batch was decoded, binned and counted in (its dead letters
        queued): a rate taken from ``first_batch_at`` to this includes the last batch's work.
    last_commit_ok, last_commit_error, last_flush_at
        Whether the last stage-1 flush delivered its records and committed their offsets,
        the last failure's text (kept after a later success), and when a flush last succeeded.
    consumer_lag_records, consumer_lag_at, consumer_lag_growing_since
        Stage-1 consumer lag (summed over owned partitions), when it was measured, and the
        start of a run of growing lag (see :meth:`Runtime.note_consumer_lag
        <stream_drift.app.runtime.Runtime.note_consumer_lag>`).
    recovering_since
        Start of the table recovery in progress.
    stage2_commit_started
        Start of the stage-2 (Faust) offset commit in progress.
    broker_lost_log
        What showed the broker lost offsets already read (sticky).
    label_join, label_join_error, label_join_partitions
        With ``labels.enabled``: ``"started"`` once the label join's consumer runs,
        ``"crashed"`` if its loop raised (``label_join_error`` says why, e.g. a missing
        changelog topic); the partitions its group (``<app_id>-labels``) assigned to this
        worker.

    Examples
    --------
    >>> h = Health()
    >>> h.to_dict()
    {}
    >>> h.ingest = "started"
    >>> h.ingest_partitions = []
    >>> h.to_dict()
    {'ingest': 'started', 'ingest_partitions': []}
    """

    ingest: Literal["started", "crashed"] | None = None
    ingest_partitions: list[int] | None = None
    stage2_partitions: list[int] | None = None
    ingest_loop_at: float | None = None
    first_batch_at: float | None = None
    last_batch_at: float | None = None
    records_consumed: int | None = None
    last_batch_done_at: float | None = None
    last_commit_ok: bool | None = None
    last_commit_error: str | None = None
    last_flush_at: float | None = None
    consumer_lag_records: int | None = None
    consumer_lag_at: float | None = None
    consumer_lag_growing_since: float | None = None
    recovering_since: float | None = None
    stage2_commit_started: float | None = None
    broker_lost_log: str | None = None
    label_join: Literal["started", "crashed"] | None = None
    label_join_error: str | None = None
    label_join_partitions: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The known fields (those not ``None``), as JSON-ready builtins."""
        body: dict[str, Any] = msgspec.to_builtins(self)
        return body
