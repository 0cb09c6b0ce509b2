"""Concept drift: a River detector on the stream of a model's errors, one per model version.

Every labelled pair (a prediction joined with its ground truth) gives one error: 0/1 (wrong or
right) for a classifier, the absolute error for a regressor. :class:`ConceptMonitor` feeds
them, in prediction event-time order, to the detector the ``concept`` section names
(:func:`make_detector`) and remembers every detection until a window reports it
(:meth:`ConceptMonitor.observe_window`), as a
:class:`~stream_drift.pipeline.alert_record.ConceptDriftResult` for the alert tracker.

A detection is an event, not a level: River's detectors reset themselves after flagging a
change, so the next window is quiet again although the model is still worse. The tracker
therefore fires a ``concept_drift`` alert after ONE window with a detection (the category is in
:data:`~stream_drift.pipeline.alert_record.EVENT_CATEGORIES`) and resolves it after
``alerts.resolve_after`` judged windows without one.

What the alert says besides "a change": the error before and after it. When a detection
happens, the errors fed since the previous detection (at most ``max_replay``) are split where
the two sides' means differ most (the least-squares change point, as a CUSUM would place it);
the means of the two sides are ``error_before`` and ``error_after``. A detector flags a change
only some pairs after it happened, so the detection's own neighbourhood would blur them.

State (:meth:`ConceptMonitor.to_dict`) holds no detector object: River's detectors (ADWIN's
core is a Rust object) serialise only through pickle, and unpickling state read back from
Kafka is what this project never does (a record on the changelog topic must never be able to
run code on a worker; ``tests/test_security.py`` forbids pickle in the package). A
detector's state is a function of its parameters and of the errors fed since its last reset
(River detectors reset themselves on the update after a detection), so the state keeps those
errors, the last ``max_replay`` of them, and :meth:`ConceptMonitor.from_dict`
replays them into a fresh detector: exactly the same detector while fewer than ``max_replay``
pairs arrived since the last detection, otherwise one that has seen only the last
``max_replay`` of them (it then needs that much more evidence of a slow change). KSWIN gets its
window set instead of a replay (a KS test per replayed error would cost a second per model);
its random choice of reference values then differs from the uninterrupted detector's. Size
(measured, 2,048 errors kept): 0/1 errors are stored as bits, ~560 bytes of JSON state;
absolute errors as float64, ~22 KB. Restoring replays them: ~1 ms for ADWIN, 20–30 ms for
Page-Hinkley, ~150 ms for HDDM_A (pure Python, on a loaded 2-core machine).

Examples
--------
>>> import numpy as np
>>> from stream_drift.config.quality import ConceptPolicy
>>> monitor = ConceptMonitor(ConceptPolicy(), binary_errors=True)
>>> rng = np.random.default_rng(0)
>>> errors = np.concatenate([rng.random(3000) < 0.05, rng.random(3000) < 0.30]).astype(float)
>>> hits = monitor.update(errors, np.arange(6000.0))
>>> len(hits), 3000 <= hits[0] < 3300
(1, True)
>>> r = monitor.observe_window(0.0, 6000.0)
>>> r.is_drift, r.n_current, round(r.error_before, 2), round(r.error_after, 2)
(True, 6000, 0.05, 0.3)
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from stream_drift.config.quality import ConceptPolicy, DetectorName
from stream_drift.pipeline.alert_record import CONCEPT_DRIFT, ConceptDriftResult
from stream_drift.stats.result import Severity

__all__ = [
    "BINARY_DETECTORS",
    "ConceptMonitor",
    "Detection",
    "make_detector",
]

#: Schema version of :meth:`ConceptMonitor.to_dict`.
STATE_FORMAT_VERSION: Final = 1

BINARY_DETECTORS: Final[frozenset[str]] = frozenset({"ddm", "eddm", "hddm_a", "hddm_w"})
"""Detectors of River's ``drift.binary``: their bounds hold for a stream of bits (1 = a wrong
prediction) only. HDDM_W accepts any number without complaint, but its McDiarmid bound assumes
values in [0, 1]: an absolute error of 250 would make it meaningless, so it is refused for
regression like the others."""

_MAX_PENDING: Final = 64
"""Detections kept for the next window at most (the count goes on beyond it)."""


def make_detector(policy: ConceptPolicy) -> Any:
    """The River detector ``policy.detector`` names, built with ``policy.detector_kwargs()``.

    KSWIN draws random samples: without a configured ``seed`` it gets ``seed=0``, so that a
    detector rebuilt from its state (see the module docstring) behaves as the original did.

    Examples
    --------
    >>> type(make_detector(ConceptPolicy(detector="page_hinkley"))).__name__
    'PageHinkley'
    >>> make_detector(ConceptPolicy(detector="adwin", params={"delta": 0.01})).delta
    0.01
    """
    from river import drift  # slow import (~0.7 s): only where a detector is built

    classes: dict[DetectorName, Any] = {
        "adwin": drift.ADWIN,
        "ddm": drift.binary.DDM,
        "eddm": drift.binary.EDDM,
        "hddm_a": drift.binary.HDDMA,
        "hddm_w": drift.binary.HDDMW,
        "page_hinkley": drift.PageHinkley,
        "kswin": drift.KSWIN,
    }
    kwargs: dict[str, Any] = policy.detector_kwargs()
    if policy.detector == "kswin":
        kwargs.setdefault("seed", 0)
    return classes[policy.detector](**kwargs)


@dataclass(frozen=True, slots=True)
class Detection:
    """One change the detector flagged.

    Parameters
    ----------
    at
        Event time (epoch seconds) of the prediction whose error completed the evidence.
    error_before, error_after
        Mean error on either side of the estimated change point.
    n_before, n_after
        Pairs behind each mean.
    """

    at: float
    error_before: float
    error_after: float
    n_before: int
    n_after: int

    def to_list(self) -> list[float | int]:
        return [self.at, self.error_before, self.error_after, self.n_before, self.n_after]

    @classmethod
    def from_list(cls, data: object) -> Detection:
        if not isinstance(data, list | tuple) or len(data) != 5:
            raise ValueError(f"malformed detection {data!r}")
        at, before, after, n_before, n_after = data
        return cls(float(at), float(before), float(after), int(n_before), int(n_after))


def _change_point(errors: np.ndarray) -> tuple[float, float, int]:
    """``(mean before, mean after, pairs before)`` around the least-squares change point.

    The split ``k`` maximises ``k (n − k) / n · (mean[:k] − mean[k:])²``: the one mean shift
    that explains most of the variance (the CUSUM estimate of a change point).

    Examples
    --------
    >>> _change_point(np.array([0.0, 0, 0, 0, 1, 1, 1]))
    (0.0, 1.0, 4)
    >>> _change_point(np.array([0.5]))
    (0.5, 0.5, 1)
    """
    n = errors.size
    if n < 2:
        mean = float(errors.mean()) if n else math.nan
        return mean, mean, n
    total = float(errors.sum())
    k = np.arange(1, n)
    left = np.cumsum(errors)[:-1]
    gain = (left / k - (total - left) / (n - k)) ** 2 * k * (n - k) / n
    split = int(np.argmax(gain)) + 1
    return float(errors[:split].mean()), float(errors[split:].mean()), split


class ConceptMonitor:
    """The concept-drift detector of one model version, with what its alerts need to say.

    Parameters
    ----------
    policy
        The ``concept`` section: detector, its parameters, the alert's severity.
    binary_errors
        ``True`` when the errors are 0/1 (a classifier), ``False`` for absolute errors (a
        regressor).
    min_pairs
        Labelled pairs a window needs to be judged without a detection (``labels.min_pairs``):
        with fewer, a quiet window neither resolves an alert nor counts towards it.
    max_replay
        Errors kept since the last detection, for the state and the before/after estimate.

    Raises
    ------
    ValueError
        When the detector needs 0/1 errors and ``binary_errors`` is ``False``, or
        ``min_pairs``/``max_replay`` is below 1.

    Examples
    --------
    >>> ConceptMonitor(ConceptPolicy(detector="ddm"), binary_errors=False)
    Traceback (most recent call last):
    ...
    ValueError: concept.detector: 'ddm' needs 0/1 errors (a classifier); this model's errors are absolute errors (a regressor): use adwin, page_hinkley or kswin
    """  # noqa: E501

    __slots__ = (
        "_buffer",
        "_detector",
        "_pending",
        "_since_n",
        "_since_sum",
        "binary_errors",
        "detections",
        "max_replay",
        "min_pairs",
        "policy",
    )

    def __init__(
        self,
        policy: ConceptPolicy,
        *,
        binary_errors: bool,
        min_pairs: int = 1,
        max_replay: int = 2048,
    ) -> None:
        if not binary_errors and policy.detector in BINARY_DETECTORS:
            raise ValueError(
                f"concept.detector: {policy.detector!r} needs 0/1 errors (a classifier); this "
                "model's errors are absolute errors (a regressor): use adwin, page_hinkley or "
                "kswin"
            )
        if min_pairs < 1 or max_replay < 1:
            raise ValueError(
                f"min_pairs and max_replay must be >= 1, got {min_pairs}, {max_replay}"
            )
        self.policy = policy
        self.binary_errors = binary_errors
        self.min_pairs = min_pairs
        self.max_replay = max_replay
        self.detections = 0
        self._detector = make_detector(policy)
        self._buffer = np.empty(0, dtype=np.float64)
        self._pending: list[Detection] = []
        self._since_n = 0
        self._since_sum = 0.0

    def __repr__(self) -> str:
        return (
            f"ConceptMonitor({self.policy.detector!r}, detections={self.detections}, "
            f"pending={len(self._pending)})"
        )

    # ----------------------------------------------------------------- feeding
    def update(self, errors: np.ndarray, ts: np.ndarray) -> list[float]:
        """Feed errors in the given order; the event times at which a change was detected.

        Parameters
        ----------
        errors
            One error per labelled pair: 0/1 for a classifier, the absolute error for a
            regressor; finite.
        ts
            The prediction's event time of each pair (epoch seconds), in the order the pairs
            are fed (the caller sorts them by prediction event time).

        Raises
        ------
        ValueError
            On a length mismatch, a non-finite or negative error, or a 0/1 detector fed
            another value.
        """
        errors = np.asarray(errors, dtype=np.float64).ravel()
        ts = np.asarray(ts, dtype=np.float64).ravel()
        if errors.shape != ts.shape:
            raise ValueError(f"{errors.size} errors but {ts.size} timestamps")
        if not errors.size:
            return []
        if not np.isfinite(errors).all() or (errors < 0).any():
            raise ValueError("errors must be finite and non-negative")
        if self.binary_errors and not np.isin(errors, (0.0, 1.0)).all():
            raise ValueError("binary_errors: every error must be 0 or 1")
        hits = self._feed(errors)
        self._since_n += errors.size
        self._since_sum += float(errors.sum())
        found: list[float] = []
        start = 0
        for i in hits:
            # Bounded like the state, so that the figures do not depend on the batching.
            segment = np.concatenate([self._buffer, errors[start : i + 1]])[-self.max_replay :]
            before, after, n_before = _change_point(segment)
            at = float(ts[i])
            found.append(at)
            self.detections += 1
            if len(self._pending) < _MAX_PENDING:
                self._pending.append(
                    Detection(at, before, after, n_before, segment.size - n_before)
                )
            # The detector resets on its next update: the detecting error is in no later state.
            self._buffer = np.empty(0, dtype=np.float64)
            start = i + 1
        self._buffer = np.concatenate([self._buffer, errors[start:]])[-self.max_replay :]
        return found

    def _feed(self, errors: np.ndarray) -> list[int]:
        """Indices of ``errors`` at which the detector flagged a change."""
        detector = self._detector
        hits = []
        for i, x in enumerate(self._values(errors)):
            detector.update(x)
            if detector.drift_detected:
                hits.append(i)
        return hits

    def _values(self, errors: np.ndarray) -> list[Any]:
        """The errors as the detector takes them: bools for 0/1 errors, else floats."""
        values: list[Any] = (errors.astype(bool) if self.binary_errors else errors).tolist()
        return values

    def _restore(self, buffer: np.ndarray) -> None:
        """Bring the fresh detector to the state the errors since its last reset give."""
        detector = self._detector
        if self.policy.detector == "kswin":
            # KSWIN runs a KS test per update (~0.5 ms): replaying 2,048 errors would cost a
            # second per model. Its state is its window of the last window_size errors, which
            # is set directly; only its random choice of the test's reference sample differs
            # from the uninterrupted detector's (a fresh generator from the same seed).
            detector.window.extend(self._values(buffer[-detector.window_size :]))
            detector.n = int(buffer.size)
            self._buffer = buffer
            return
        hits = self._feed(buffer)
        # Only a replay shortened to max_replay can flag anew; what follows it is the state.
        self._buffer = buffer[hits[-1] + 1 :] if hits else buffer

    # ---------------------------------------------------------------- judging
    def observe_window(self, start: float, end: float) -> ConceptDriftResult:
        """The verdict for the tracker on the window ``[start, end)`` that just closed.

        It reports the detections made since the previous window whose prediction is older
        than ``end`` (a detection at a later event time is kept for the window it belongs to),
        and the labelled pairs fed since the previous window: labels arrive seconds to days
        after their prediction, so they are judged when they arrive, not with their
        prediction's window.

        ``value`` is the number of detections, ``threshold`` 1; ``judged`` is ``False`` for a
        window without a detection and with fewer than ``min_pairs`` new pairs (no evidence
        either way). The pair counts and error sums restart with every call.

        Raises
        ------
        ValueError
            When ``end < start``.
        """
        if end < start:
            raise ValueError(f"window end {end!r} is before its start {start!r}")
        due = [d for d in self._pending if d.at < end]
        self._pending = [d for d in self._pending if d.at >= end]
        n, total = self._since_n, self._since_sum
        self._since_n, self._since_sum = 0, 0.0
        drifted = bool(due)
        severity = Severity.CRITICAL if self.policy.severity == "critical" else Severity.WARNING
        first = due[0] if due else None
        return ConceptDriftResult(
            statistic=CONCEPT_DRIFT,
            value=float(len(due)),
            threshold=1.0,
            p_value=None,
            is_drift=drifted,
            severity=severity if drifted else Severity.OK,
            n_reference=first.n_before if first else 0,
            n_current=n,
            judged=drifted or n >= self.min_pairs,
            detector=self.policy.detector,
            detected_at=first.at if first else None,
            error_before=first.error_before if first else math.nan,
            error_after=first.error_after if first else math.nan,
            error_now=total / n if n else math.nan,
            regression=not self.binary_errors,
        )

    @property
    def pending(self) -> tuple[Detection, ...]:
        """Detections not reported by a window yet, oldest first."""
        return tuple(self._pending)

    # ----------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: the errors since the last detection, no detector object.

        Examples
        --------
        >>> m = ConceptMonitor(ConceptPolicy(), binary_errors=True)
        >>> _ = m.update(np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0, 3.0]))
        >>> d = m.to_dict()
        >>> d["n_buffer"], d["buffer"]
        (3, 'QA==')
        >>> ConceptMonitor.from_dict(d, ConceptPolicy()).to_dict() == d
        True
        """
        if self.binary_errors:
            raw = np.packbits(self._buffer.astype(np.uint8)).tobytes()
        else:
            raw = self._buffer.astype("<f8").tobytes()
        return {
            "version": STATE_FORMAT_VERSION,
            "detector": self.policy.detector,
            "params": dict(self.policy.detector_kwargs()),
            "binary_errors": self.binary_errors,
            "min_pairs": self.min_pairs,
            "max_replay": self.max_replay,
            "detections": self.detections,
            "n_buffer": int(self._buffer.size),
            "buffer": base64.b64encode(raw).decode("ascii"),
            "pending": [d.to_list() for d in self._pending],
            "since_n": self._since_n,
            "since_sum": self._since_sum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], policy: ConceptPolicy) -> ConceptMonitor:
        """Rebuild a monitor from :meth:`to_dict` output, replaying the kept errors.

        A state written for another detector or other parameters than ``policy``'s (the
        configuration changed) keeps its counts and pending detections but starts a fresh
        detector: the kept errors are replayed into the new one all the same.

        Raises
        ------
        ValueError
            On an unknown format version or malformed content.
        """
        if data.get("version") != STATE_FORMAT_VERSION:
            raise ValueError(
                f"unsupported ConceptMonitor state version {data.get('version')!r} "
                f"(expected {STATE_FORMAT_VERSION})"
            )
        try:
            monitor = cls(
                policy,
                binary_errors=bool(data["binary_errors"]),
                min_pairs=int(data["min_pairs"]),
                max_replay=int(data["max_replay"]),
            )
            n = int(data["n_buffer"])
            raw = base64.b64decode(str(data["buffer"]), validate=True)
            if monitor.binary_errors:
                bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n)
                buffer: np.ndarray = bits.astype(np.float64)
            else:
                buffer = np.frombuffer(raw, dtype="<f8", count=n).astype(np.float64)
            pending = [Detection.from_list(d) for d in data["pending"]]
            detections = int(data["detections"])
            since_n, since_sum = int(data["since_n"]), float(data["since_sum"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed ConceptMonitor state: {exc}") from exc
        monitor._restore(buffer)
        monitor.detections = detections
        monitor._pending = pending[:_MAX_PENDING]
        monitor._since_n, monitor._since_sum = since_n, since_sum
        return monitor
