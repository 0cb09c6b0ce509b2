"""The delayed-label join: predictions wait for their labels (and labels for predictions).

Kafka-free: the app (``app/labels.py``) feeds it records of one source partition at a
time -- partition ``p`` of ``drift.events`` and of ``drift.labels`` carry the same event ids,
because the client keys both by ``event_id`` with the same partitioner -- and writes what it
returns: the joined pairs and outcome counts (:class:`LabelOutcomes`, to stage 2) and the
state changes (:meth:`LabelJoin.take_changes`, to a compacted changelog topic).

Decoding predictions (:func:`decode_predictions`)
-------------------------------------------------
The join reads ``drift.events`` a second time and needs only ``model``, ``model_version``,
``event_id``, ``ts`` and ``prediction``, with stage 1's rules (:mod:`~stream_drift.pipeline.
decode`): ``model_version`` and ``event_id`` may be integers (turned into strings, so an id
joins with a label carrying it either way), ``ts`` is epoch seconds/ms or RFC 3339 (absent:
the Kafka record timestamp). ``features`` are skipped by msgspec without being built. The
prediction is a number, a string, or a bool (``"true"``/``"false"``, as labels decode); an
object of named outputs counts only when it has exactly one output (``{"score": 0.9}``
reads as ``0.9``) -- with several there is no single prediction to score. A record without
``event_id`` or ``prediction``, or one stage 1 refuses (including a ``ts`` beyond the
worker's clock plus ``window.max_future_seconds``), is skipped and counted (stage 1 has
dead-lettered it already; this path must not dead-letter it twice).

Labels (:func:`decode_labels`) are decoded by stage 1's decoder; a label whose ``ts`` is
beyond the clock plus ``window.max_future_seconds`` is dead-lettered as ``future_timestamp``
like an event: its time would raise the partition's watermark and expire every waiting
prediction at once (one label stamped ten years ahead would wipe the join).

Untrusted sizes
---------------
Event ids, model names and versions, and string predictions and labels longer than
:data:`MAX_TEXT_CHARS` are held in the join as :func:`compact_text` (a prefix, the length
and a 128-bit BLAKE2b digest): two equal strings stay equal, so they still join and score,
while one waiting entry stays small whatever the record held (a megabyte event id times
``max_pending`` would not fit in memory) and a pair always fits in a Kafka record.
:func:`split_outcomes` splits a model version's pairs over several messages when one would
exceed the producer's record limit.

Join rules (:class:`LabelJoin`)
-------------------------------
State is kept per source partition and keyed by ``(model, event_id)`` (two models may score
the same event). Each arriving record first raises its partition's *watermark* -- the largest
event time (prediction ``ts`` or label ``ts``) seen there -- and expires what is older than
``watermark - ttl_seconds``; everything runs on event time, so a replay gives the same
outcomes. Then:

======================  ===================================  ===============================
arrives                 finds                                outcome
======================  ===================================  ===============================
prediction              nothing                              waits (``expired`` if already
                                                             older than the TTL)
prediction              a waiting label                      ``joined`` (one pair)
prediction              a waiting prediction or a join       ``duplicate`` (a replay: the
                                                             first one is kept)
label                   nothing                              waits (``orphan_label`` if
                                                             already older than the TTL)
label                   a waiting prediction                 ``joined`` (one pair)
label                   a waiting label or a join            ``duplicate`` (never a second
                                                             pair)
expiry                  a waiting prediction / label         ``expired`` / ``orphan_label``
expiry                  a join                               forgotten (no outcome)
======================  ===================================  ===============================

A join is remembered (to spot duplicates) until its later time passes the TTL. At most
``max_pending`` entries (waiting predictions, waiting labels and remembered joins, over all
partitions) are held; beyond that the oldest by event time is evicted and counted like an
expiry -- never silently. A pair carries its prediction's model version; outcomes of a label
without a prediction go to the label's own ``model_version`` (``""`` when it has none).

Memory: one entry is a key string, a dict slot, a 2- or 5-tuple and a heap item; measured
with ``tracemalloc`` (``tests/test_label_join.py`` checks a bound) at about **335 bytes per
waiting prediction** with 10-character ids (1,000,000 pending ≈ 335 MB).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple, TypeAlias, get_args

import msgspec

from stream_drift.pipeline.alert_text import format_timestamp
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import Label, RawRecord, Rejection, RejectReason
from stream_drift.pipeline.timestamps import MS_THRESHOLD, datetime_seconds, numeric_seconds

__all__ = [
    "MAX_TEXT_CHARS",
    "OUTCOMES",
    "JoinStep",
    "LabelJoin",
    "LabelOutcomes",
    "Outcome",
    "Pair",
    "PredictionRecord",
    "compact_text",
    "decode_labels",
    "decode_predictions",
    "join_key",
    "outcome_messages",
    "split_outcomes",
]

Outcome = Literal["joined", "orphan_label", "expired", "duplicate"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
Scalar: TypeAlias = float | str | bool

_SEP: Final = "\x1f"  # unit separator: between model and event id in a state key
WATERMARK_KEY: Final = "\x00"
"""Changelog key of a partition's watermark (never a join key: those contain ``\\x1f``)."""

_PREDICTION: Final = 0
_LABEL: Final = 1
_JOINED: Final = 2
_WATERMARK: Final = 3

# State entries are plain tuples (no per-entry object or dict):
#   waiting prediction (ts, 0, model, model_version, prediction)
#   waiting label      (ts, 1, model, model_version | None, label)
#   remembered join    (ts, 2)
_Entry: TypeAlias = tuple[Any, ...]


MAX_TEXT_CHARS: Final = 256
"""Longer ids, names and string values are held as :func:`compact_text`."""


def compact_text(text: str) -> str:
    """``text`` itself when short, else a short stand-in that is equal only for equal text.

    Examples
    --------
    >>> compact_text("fraud")
    'fraud'
    >>> long = compact_text("x" * 1_000_000)
    >>> len(long), long[:20]
    (107, 'xxxxxxxxxxxxxxxxxxxx')
    >>> long == compact_text("x" * 1_000_000), long == compact_text("x" * 999_999 + "y")
    (True, False)
    """
    if len(text) <= MAX_TEXT_CHARS:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{text[:64]}...{len(text)}:{digest.hexdigest()}"


def _short(value: Any) -> Any:
    """:func:`compact_text` of a long string; anything else as is (the hot path: one test)."""
    if value.__class__ is str and len(value) > MAX_TEXT_CHARS:
        return compact_text(value)
    return value


def join_key(model: str, event_id: str) -> str:
    """The state (and changelog) key of one event of one model.

    Examples
    --------
    >>> join_key("fraud", "e1")
    'fraud\\x1fe1'
    """
    return model + _SEP + event_id


# --------------------------------------------------------------------------- decoding


class PredictionRecord(NamedTuple):
    """One prediction as the join needs it (see the module docstring for the rules)."""

    model: str
    model_version: str
    event_id: str
    ts: float
    prediction: float | str


class _WirePrediction(msgspec.Struct, gc=False):
    model: str
    model_version: str | int | None = None
    event_id: str | int | None = None
    ts: float | datetime | None = None
    prediction: float | str | bool | dict[str, float | str | bool | None] | None = None


_PREDICTION_DECODER: Final = msgspec.json.Decoder(_WirePrediction)


def _prediction_value(value: object) -> float | str | None:
    if value.__class__ is dict:
        if len(value) != 1:
            return None  # no output, or several: no single prediction to score
        (value,) = value.values()
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value  # type: ignore[return-value]


def decode_predictions(
    records: Iterable[RawRecord],
    *,
    max_message_bytes: int = 1_048_576,
    known_models: Collection[str] | None = None,
    horizon: float = math.inf,
) -> tuple[list[PredictionRecord], int]:
    """The predictions with an ``event_id`` in event records, and how many were skipped.

    Parameters
    ----------
    records
        Records of ``drift.events``.
    max_message_bytes
        Larger records are skipped (stage 1 refuses them as ``oversize``).
    known_models
        When given, predictions of other models are skipped (stage 1 refuses them).
    horizon
        Predictions with a later ``ts`` are skipped (stage 1 refuses them as
        ``future_timestamp``): the worker's clock plus ``window.max_future_seconds``.

    Returns
    -------
    tuple[list[PredictionRecord], int]
        The predictions in record order, and the number of records skipped: no
        ``event_id``, no (single) prediction, or a record stage 1 refuses.

    Examples
    --------
    >>> recs = [RawRecord(v, "drift.events", 0, i, 1764213000000) for i, v in enumerate([
    ...     b'{"model": "m", "event_id": 7, "prediction": true, "features": {"x": 1}}',
    ...     b'{"model": "m", "model_version": 2, "event_id": "a", "prediction": {"p": 0.25},'
    ...     b' "ts": "2026-11-27T09:00:00Z"}',
    ...     b'{"model": "m", "prediction": 0.5}',
    ...     b'{"model": "m", "event_id": "b", "prediction": {"p": 0.1, "q": 0.9}}',
    ...     b'not json'])]
    >>> preds, skipped = decode_predictions(recs)
    >>> preds
    [PredictionRecord(model='m', model_version='', event_id='7', ts=1764213000.0,
                      prediction='true'),
     PredictionRecord(model='m', model_version='2', event_id='a', ts=1795770000.0,
                      prediction=0.25)]
    >>> skipped
    3
    """
    known = None if known_models is None else frozenset(known_models)
    decode = _PREDICTION_DECODER.decode
    out: list[PredictionRecord] = []
    skipped = 0
    for record in records:
        raw = record.value
        if not raw or len(raw) > max_message_bytes:
            skipped += 1
            continue
        try:
            wire = decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):
            skipped += 1
            continue
        model = wire.model
        event_id = wire.event_id
        prediction = _prediction_value(wire.prediction)
        if (
            event_id is None
            or event_id == ""
            or prediction is None
            or not model
            or model.isspace()
            or (known is not None and model not in known)
        ):
            skipped += 1
            continue
        ts = wire.ts
        if ts.__class__ is not float or not 0.0 <= ts <= MS_THRESHOLD:
            ts = _event_time(record, ts)  # not plain epoch seconds, the common case
            if ts is None:
                skipped += 1
                continue
        if ts > horizon:
            skipped += 1
            continue
        version = wire.model_version
        out.append(
            PredictionRecord(
                model,
                "" if version is None else str(version),
                event_id if event_id.__class__ is str else str(event_id),
                ts,
                prediction,
            )
        )
    return out, skipped


def _event_time(record: RawRecord, value: float | datetime | None) -> float | None:
    """Stage 1's event time (``None`` where stage 1 refuses it as ``bad_timestamp``)."""
    if value is None:
        ms = record.timestamp_ms
        return None if ms < 0 else ms / 1000.0
    if value.__class__ is float:
        return numeric_seconds(value)
    try:
        return datetime_seconds(value)  # type: ignore[arg-type]
    except ValueError:
        return None


def decode_labels(
    decoder: EventDecoder, records: Iterable[RawRecord], *, horizon: float = math.inf
) -> tuple[list[Label], list[Rejection]]:
    """Decode label records; every record ends in the labels or the rejections.

    As :meth:`EventDecoder.decode_label_batch
    <stream_drift.pipeline.decode.EventDecoder.decode_label_batch>`, and a label whose ``ts``
    is beyond ``horizon`` (the worker's clock plus ``window.max_future_seconds``) is refused
    as ``future_timestamp``: it must not move the partition's watermark there.

    Examples
    --------
    >>> recs = [RawRecord(b'{"model": "m", "event_id": "a", "label": 1, "ts": %d}' % t,
    ...                   "drift.labels", 0, t, 0) for t in (100, 2000)]
    >>> labels, rejections = decode_labels(EventDecoder(), recs, horizon=1000.0)
    >>> [lb.event_id for lb in labels], rejections[0].reason.value
    (['a'], 'future_timestamp')
    >>> rejections[0].detail[:62]
    "ts: 1970-01-01T00:33:20Z is later than the worker's clock plus"
    """
    labels: list[Label] = []
    rejections: list[Rejection] = []
    for record in records:
        out = decoder.decode_label(record)
        if isinstance(out, Rejection):
            rejections.append(out)
        elif out.ts > horizon:
            detail = (
                f"ts: {format_timestamp(out.ts)} is later than the worker's clock plus "
                f"window.max_future_seconds ({format_timestamp(horizon)}): the label would "
                "expire every waiting prediction; check the labeller's clock"
            )
            rejections.append(Rejection(record, RejectReason.FUTURE_TIMESTAMP, detail, out.model))
        else:
            labels.append(out)
    return labels, rejections


# --------------------------------------------------------------------------- results


class Pair(NamedTuple):
    """A prediction joined with its label."""

    model: str
    model_version: str
    event_id: str
    prediction: float | str
    label: float | str
    prediction_ts: float
    label_ts: float


@dataclass(slots=True)
class JoinStep:
    """What one call of :class:`LabelJoin` produced.

    Attributes
    ----------
    pairs
        Joined pairs, in the order they joined.
    outcomes
        ``(model, outcome) -> count`` (the ``stream_drift_label_join_total`` series).
    versioned
        The same counts by ``(model, model_version, outcome)``.
    """

    pairs: list[Pair] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    versioned: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def count(self, model: str, model_version: str | None, outcome: Outcome) -> None:
        self.outcomes[model, outcome] += 1
        self.versioned[model, model_version or "", outcome] += 1

    def extend(self, other: JoinStep) -> JoinStep:
        """Append another step's pairs and counts; returns ``self``."""
        self.pairs.extend(other.pairs)
        self.outcomes.update(other.outcomes)
        self.versioned.update(other.versioned)
        return self


class LabelOutcomes(msgspec.Struct, tag_field="kind", tag="labels", omit_defaults=True):
    """Joined pairs and join outcomes of one model version, sent to stage 2 keyed by model.

    ``pairs`` are ``(prediction_ts, prediction, label)`` sorted by prediction time (stage 2
    windows them by the prediction's event time and feeds the concept detector in that
    order); ``outcomes`` counts ``joined``, ``orphan_label``, ``expired`` and ``duplicate``
    (zero counts left out); ``source`` is the topic/partition they came from.
    ``confidence`` (left out when empty): per step of prediction time, the predictions whose
    score is in [0, 1] and the sum of ``max(p, 1 - p)`` over them, labelled or not
    (:func:`confidence_sums`; stage 2's label-free accuracy estimate).

    Examples
    --------
    >>> msg = LabelOutcomes("fraud", "3", "drift.labels/0", [(10.0, 0.9, "true")], {"joined": 1})
    >>> msg.to_bytes()
    b'{"kind":"labels","model":"fraud","model_version":"3","source":"drift.labels/0","pairs":[[10.0,0.9,"true"]],"outcomes":{"joined":1}}'
    >>> LabelOutcomes.from_bytes(msg.to_bytes()) == msg
    True
    """

    model: str
    model_version: str
    source: str
    pairs: list[tuple[float, Scalar, Scalar]]
    outcomes: dict[str, int]
    confidence: dict[float, tuple[int, float]] = msgspec.field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return _OUTCOMES_ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelOutcomes:
        return _OUTCOMES_DECODER.decode(data)


_OUTCOMES_ENCODER: Final = msgspec.json.Encoder()
_OUTCOMES_DECODER: Final = msgspec.json.Decoder(LabelOutcomes)


def confidence_sums(
    predictions: Iterable[PredictionRecord], step_seconds: float
) -> dict[tuple[str, str], dict[float, tuple[int, float]]]:
    """Per (model, version) and step of prediction time: the predictions whose score is a
    number in [0, 1], and the sum of ``max(p, 1 - p)`` over them.

    For a binary classifier whose scores are calibrated probabilities, that sum over n is the
    accuracy to expect before any label arrives (confidence-based estimation).

    Examples
    --------
    >>> preds = [PredictionRecord("m", "1", "a", 61.0, 0.9),
    ...          PredictionRecord("m", "1", "b", 62.0, 0.2),
    ...          PredictionRecord("m", "1", "c", 63.0, "yes")]
    >>> confidence_sums(preds, 60.0)
    {('m', '1'): {60.0: (2, 1.7)}}
    """
    out: dict[tuple[str, str], dict[float, tuple[int, float]]] = {}
    for p in predictions:
        score = p.prediction
        if isinstance(score, str) or not 0.0 <= score <= 1.0:
            continue
        start = math.floor(p.ts / step_seconds) * step_seconds
        steps = out.setdefault((p.model, p.model_version), {})
        n, total = steps.get(start, (0, 0.0))
        steps[start] = (n + 1, total + max(score, 1.0 - score))
    return out


def outcome_messages(step: JoinStep, source: str) -> list[LabelOutcomes]:
    """One :class:`LabelOutcomes` per ``(model, model_version)`` of a step, sorted by both.

    A message may be larger than a Kafka record may be: see :func:`split_outcomes`.

    Examples
    --------
    >>> step = JoinStep()
    >>> step.pairs += [Pair("m", "1", "b", 0.2, "false", 20.0, 25.0),
    ...                Pair("m", "1", "a", 0.9, "true", 10.0, 30.0)]
    >>> step.count("m", "1", "joined"); step.count("m", "1", "joined")
    >>> step.count("m", None, "orphan_label")
    >>> [(m.model_version, m.pairs, m.outcomes) for m in outcome_messages(step, "drift.labels/0")]
    [('', [], {'orphan_label': 1}),
     ('1', [(10.0, 0.9, 'true'), (20.0, 0.2, 'false')], {'joined': 2})]
    """
    groups: dict[tuple[str, str], tuple[list[tuple[float, Scalar, Scalar]], dict[str, int]]] = {}
    for p in step.pairs:
        pairs, _ = groups.setdefault((p.model, p.model_version), ([], {}))
        pairs.append((p.prediction_ts, p.prediction, p.label))
    for (model, version, outcome), n in step.versioned.items():
        if n:
            _, counts = groups.setdefault((model, version), ([], {}))
            counts[outcome] = counts.get(outcome, 0) + n
    out = []
    for (model, version), (pairs, counts) in sorted(groups.items()):
        pairs.sort(key=lambda t: t[0])  # stable: pairs of one time keep their join order
        out.append(LabelOutcomes(model, version, source, pairs, counts))
    return out


def split_outcomes(message: LabelOutcomes, max_bytes: int) -> list[LabelOutcomes]:
    """``message`` as parts that each encode to at most ``max_bytes`` (one part if it fits).

    A backlog joins tens of thousands of pairs of one model in one flush, more than one
    Kafka record may hold (a record the producer refuses would fail every flush). The pairs
    keep their order; the outcome counts go with the first part. One pair always fits a
    record: its strings are compacted (:func:`compact_text`).

    Examples
    --------
    >>> msg = LabelOutcomes("m", "1", "l/0", [(10.0, 0.9, "true"), (20.0, 0.2, "false")],
    ...                     {"joined": 2})
    >>> [(m.pairs, m.outcomes) for m in split_outcomes(msg, 110)]
    [([(10.0, 0.9, 'true')], {'joined': 2}), ([(20.0, 0.2, 'false')], {})]
    """
    pairs = message.pairs
    if len(pairs) <= 1 or len(message.to_bytes()) <= max_bytes:
        return [message]
    half = len(pairs) // 2
    m = message
    first = LabelOutcomes(
        m.model, m.model_version, m.source, pairs[:half], m.outcomes, m.confidence
    )
    rest = LabelOutcomes(m.model, m.model_version, m.source, pairs[half:], {})
    return split_outcomes(first, max_bytes) + split_outcomes(rest, max_bytes)


# --------------------------------------------------------------------------- the join


class _Partition:
    __slots__ = ("entries", "heap", "watermark")

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        # (ts, key) of every entry, lazily cleaned: an item whose entry is gone or has
        # another time is stale and skipped when it reaches the top.
        self.heap: list[tuple[float, str]] = []
        self.watermark = -math.inf

    def top(self) -> tuple[float, str] | None:
        """The oldest live ``(ts, key)``, stale items dropped on the way."""
        heap, entries = self.heap, self.entries
        while heap:
            ts, key = heap[0]
            e = entries.get(key)
            if e is not None and e[0] == ts:
                return ts, key
            heapq.heappop(heap)
        return None

    def rebuild_heap(self) -> None:
        self.heap = [(e[0], k) for k, e in self.entries.items()]
        heapq.heapify(self.heap)


_ENTRY_ENCODER: Final = msgspec.msgpack.Encoder()
_ENTRY_DECODER: Final = msgspec.msgpack.Decoder(tuple[Any, ...])


class LabelJoin:
    """Join predictions and labels by ``(model, event_id)`` within a time-to-live.

    Rules, outcomes and memory in the module docstring.

    Parameters
    ----------
    ttl_seconds
        Event time an entry waits (``labels.ttl_seconds``).
    max_pending
        Entries held over all partitions (``labels.max_pending``).

    Examples
    --------
    >>> join = LabelJoin(ttl_seconds=100.0, max_pending=10)
    >>> join.add_predictions(0, [PredictionRecord("m", "1", "a", 10.0, 0.9)]).outcomes
    Counter()
    >>> step = join.add_labels(0, [Label("m", "a", "true", 50.0)])
    >>> step.pairs
    [Pair(model='m', model_version='1', event_id='a', prediction=0.9, label='true',
          prediction_ts=10.0, label_ts=50.0)]
    >>> join.add_labels(0, [Label("m", "a", "false", 60.0)]).outcomes  # a second label
    Counter({('m', 'duplicate'): 1})
    >>> join.add_predictions(0, [PredictionRecord("m", "1", "b", 70.0, 0.2)]).outcomes
    Counter()
    >>> join.expire(0, 171.0).outcomes  # "b" (70) is older than 171 - 100
    Counter({('m', 'expired'): 1})
    """

    def __init__(self, ttl_seconds: float, max_pending: int) -> None:
        if not ttl_seconds > 0 or not math.isfinite(ttl_seconds):
            raise ValueError(f"ttl_seconds must be positive and finite, got {ttl_seconds!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int, got {max_pending!r}")
        self.ttl_seconds = float(ttl_seconds)
        self.max_pending = max_pending
        self._parts: dict[int, _Partition] = {}
        self._size = 0
        self._changes: dict[int, dict[str, None]] = {}
        self._names: dict[str, str] = {}  # shares model/version strings between entries

    def __repr__(self) -> str:
        return (
            f"LabelJoin(ttl_seconds={self.ttl_seconds!r}, max_pending={self.max_pending!r}, "
            f"size={self._size})"
        )

    # ----------------------------------------------------------------- inspection
    @property
    def size(self) -> int:
        """Entries held over all partitions (waiting predictions, labels, joins)."""
        return self._size

    @property
    def partitions(self) -> list[int]:
        return sorted(self._parts)

    def pending(self, partition: int) -> Counter[str]:
        """Entries of one partition by kind: ``prediction``, ``label``, ``joined``."""
        kinds = ("prediction", "label", "joined")
        part = self._parts.get(partition)
        return Counter() if part is None else Counter(kinds[e[1]] for e in part.entries.values())

    def watermark(self, partition: int) -> float:
        """The largest event time seen on a partition (``-inf`` before any)."""
        part = self._parts.get(partition)
        return -math.inf if part is None else part.watermark

    # ----------------------------------------------------------------- input
    def add_predictions(self, partition: int, predictions: Iterable[PredictionRecord]) -> JoinStep:
        """Add predictions of one source partition, in record order."""
        step = JoinStep()
        part = self._part(partition)
        changed = self._changed(partition)
        ttl = self.ttl_seconds
        name = self._name
        limit = MAX_TEXT_CHARS
        for model, version, event_id, ts, prediction in predictions:
            key = model + _SEP + event_id
            # One test in the common case: the key's length bounds the model's and the id's.
            if (
                len(key) > limit
                or len(version) > limit
                or (prediction.__class__ is str and len(prediction) > limit)
            ):
                model, version, event_id = _short(model), _short(version), _short(event_id)
                prediction = _short(prediction)
                key = model + _SEP + event_id
            if ts > part.watermark:
                self._advance(part, ts, changed, step)
            e = part.entries.get(key)
            if e is None:
                if ts < part.watermark - ttl:
                    step.count(model, version, "expired")
                    continue
                self._insert(part, key, (ts, _PREDICTION, name(model), name(version), prediction))
                changed[key] = None
                self._bound(step)
            elif e[1] == _LABEL:
                step.pairs.append(Pair(model, version, event_id, prediction, e[4], ts, e[0]))
                step.count(model, version, "joined")
                self._mark_joined(part, key, max(ts, e[0]), e[0])
                changed[key] = None
            else:  # a waiting prediction or a join: a replayed prediction
                step.count(model, version, "duplicate")
        return step

    def add_labels(self, partition: int, labels: Iterable[Label]) -> JoinStep:
        """Add labels of one source partition, in record order."""
        step = JoinStep()
        part = self._part(partition)
        changed = self._changed(partition)
        ttl = self.ttl_seconds
        name = self._name
        limit = MAX_TEXT_CHARS
        for label in labels:
            ts = label.ts
            model, event_id, value = label.model, label.event_id, label.label
            label_version = label.model_version
            key = model + _SEP + event_id
            if (
                len(key) > limit
                or (value.__class__ is str and len(value) > limit)
                or (label_version is not None and len(label_version) > limit)
            ):
                model, event_id, value = _short(model), _short(event_id), _short(value)
                label_version = _short(label_version)
                key = model + _SEP + event_id
            if ts > part.watermark:
                self._advance(part, ts, changed, step)
            e = part.entries.get(key)
            if e is None:
                if ts < part.watermark - ttl:
                    step.count(model, label_version, "orphan_label")
                    continue
                version = None if label_version is None else name(label_version)
                self._insert(part, key, (ts, _LABEL, name(model), version, value))
                changed[key] = None
                self._bound(step)
            elif e[1] == _PREDICTION:
                _, _, _, version, prediction = e
                step.pairs.append(Pair(model, version, event_id, prediction, value, e[0], ts))
                step.count(model, version, "joined")
                self._mark_joined(part, key, max(ts, e[0]), e[0])
                changed[key] = None
            else:  # a waiting label or a join
                step.count(model, label_version, "duplicate")
        return step

    def expire(self, partition: int, watermark: float | None = None) -> JoinStep:
        """Expire what is older than the partition's watermark minus the TTL.

        ``watermark`` raises the partition's watermark first (it never goes back); the
        ``add_*`` methods expire as they go, so calling this is only needed to advance time
        without records.
        """
        step = JoinStep()
        part = self._part(partition)
        changed = self._changed(partition)
        if watermark is not None and watermark > part.watermark:
            self._advance(part, float(watermark), changed, step)
        else:
            self._expire(part, changed, step)
        return step

    # ----------------------------------------------------------------- changelog
    def take_changes(self) -> list[tuple[int, str, bytes | None]]:
        """``(partition, key, entry or None)`` of every key changed since the last call.

        Coalesced per key (the current state is written, so the last write wins); ``None``
        is a tombstone. :data:`WATERMARK_KEY` carries the partition's watermark.
        """
        out: list[tuple[int, str, bytes | None]] = []
        encode = _ENTRY_ENCODER.encode
        for partition, keys in sorted(self._changes.items()):
            part = self._parts.get(partition)
            if part is None:
                continue
            entries = part.entries
            for key in keys:
                if key == WATERMARK_KEY:
                    out.append((partition, key, encode((part.watermark, _WATERMARK))))
                    continue
                e = entries.get(key)
                out.append((partition, key, None if e is None else encode(e)))
        self._changes = {}
        return out

    def restore(
        self,
        partition: int,
        records: Iterable[tuple[str, bytes | None]],
        horizon: float = math.inf,
    ) -> int:
        """Rebuild one partition from its changelog records, in log order; returns its size.

        A tombstone deletes a key, a later record wins. The partition's previous state, if
        any, is replaced. Entries beyond ``max_pending`` are evicted (and counted) by the
        next ``add_*`` call. A watermark beyond ``horizon`` (the clock plus
        ``window.max_future_seconds``; a changelog written before labels from the future
        were refused may hold one) is brought back to it: otherwise every new prediction
        would count as ``expired`` on arrival.

        Raises
        ------
        ValueError
            If a record does not decode (the changelog is written by this class only).
        """
        entries: dict[str, _Entry] = {}
        watermark = -math.inf
        for key, value in records:
            if value is None:
                entries.pop(key, None)
                continue
            try:
                e = _ENTRY_DECODER.decode(value)
            except msgspec.DecodeError as exc:
                raise ValueError(f"label join changelog: bad entry for {key!r}: {exc}") from None
            if key == WATERMARK_KEY:
                watermark = max(watermark, float(e[0]))
            elif len(e) in (2, 5) and e[1] in (_PREDICTION, _LABEL, _JOINED):
                entries[key] = tuple(self._name(v) if v.__class__ is str else v for v in e)
            else:
                raise ValueError(f"label join changelog: bad entry for {key!r}: {e!r}")
        self.drop_partition(partition)
        part = self._part(partition)
        part.entries = entries
        part.watermark = min(watermark, horizon)
        if part.watermark != watermark:
            self._changed(partition)[WATERMARK_KEY] = None
        part.rebuild_heap()
        self._size += len(entries)
        return len(entries)

    def drop_partition(self, partition: int) -> None:
        """Forget a partition (revoked), with its changes not yet taken."""
        part = self._parts.pop(partition, None)
        if part is not None:
            self._size -= len(part.entries)
        self._changes.pop(partition, None)

    # ----------------------------------------------------------------- internals
    def _part(self, partition: int) -> _Partition:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition()
        return part

    def _changed(self, partition: int) -> dict[str, None]:
        changed = self._changes.get(partition)
        if changed is None:
            changed = self._changes[partition] = {}
        return changed

    def _name(self, s: str) -> str:
        names = self._names
        shared = names.get(s)
        if shared is None:
            if len(names) >= 10_000:  # label input is free text: keep the cache bounded
                names.clear()
            shared = names[s] = s
        return shared

    def _insert(self, part: _Partition, key: str, entry: _Entry) -> None:
        part.entries[key] = entry
        heapq.heappush(part.heap, (entry[0], key))
        self._size += 1
        if len(part.heap) > 2 * len(part.entries) + 1024:
            part.rebuild_heap()  # stale items (joins that moved their time) stay bounded

    def _mark_joined(self, part: _Partition, key: str, ts: float, old_ts: float) -> None:
        part.entries[key] = (ts, _JOINED)
        if ts != old_ts:
            heapq.heappush(part.heap, (ts, key))

    def _advance(
        self, part: _Partition, ts: float, changed: dict[str, None], step: JoinStep
    ) -> None:
        part.watermark = ts
        changed[WATERMARK_KEY] = None
        self._expire(part, changed, step)

    def _expire(self, part: _Partition, changed: dict[str, None], step: JoinStep) -> None:
        cutoff = part.watermark - self.ttl_seconds
        heap = part.heap
        while heap and heap[0][0] < cutoff:
            top = part.top()
            if top is None or top[0] >= cutoff:
                break
            self._remove(part, top[1], step)
            changed[top[1]] = None

    def _remove(self, part: _Partition, key: str, step: JoinStep) -> None:
        heapq.heappop(part.heap)
        e = part.entries.pop(key)
        self._size -= 1
        if e[1] == _PREDICTION:
            step.count(e[2], e[3], "expired")
        elif e[1] == _LABEL:
            step.count(e[2], e[3], "orphan_label")

    def _bound(self, step: JoinStep) -> None:
        """Evict the oldest entries (over all partitions) beyond ``max_pending``."""
        while self._size > self.max_pending:
            best: tuple[float, str, int] | None = None
            for p, part in self._parts.items():
                top = part.top()
                if top is not None and (best is None or (top[0], top[1], p) < best):
                    best = (top[0], top[1], p)
            if best is None:  # pragma: no cover - size > 0 means some partition has an entry
                return
            self._remove(self._parts[best[2]], best[1], step)
            self._changed(best[2])[best[1]] = None

    def __iter__(self) -> Iterator[tuple[int, str, _Entry]]:
        """``(partition, key, entry)`` of every entry (for tests and debugging)."""
        for p, part in sorted(self._parts.items()):
            for key, e in part.entries.items():
                yield p, key, e
