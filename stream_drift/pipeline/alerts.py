"""Alert state machine: hysteresis, cooldown and deduplication of drift findings.

Every evaluation of one statistic on one feature yields a
:class:`~stream_drift.stats.result.DriftResult`. Publishing each of them would ring
the on-call phone once per window; :class:`AlertTracker` turns the stream of
results into the few *state changes* an SRE needs (DESIGN §3.3):

``firing``
    after ``fire_after`` consecutive judged windows with ``is_drift`` (after one such window for
    an event category, ``concept_drift``: a detector flags a change once);
``escalated``
    when a firing alert's severity rises from warning to critical;
``resolved``
    after ``resolve_after`` consecutive judged windows whose value is below
    ``threshold * resolve_ratio``.

A value between the lower (``threshold * resolve_ratio``) and the upper
(``threshold``) level keeps the current state and breaks both streaks; windows with
``judged=False`` change nothing at all. After a resolve the same key cannot fire
again until ``cooldown_seconds`` of *evaluation time* have passed. The tracker
never reads the wall clock: every timestamp is passed in, so it is deterministic,
replayable and testable.

The tracker keeps one small :class:`AlertState` per key ``(model, feature,
statistic)``, drops keys that are back to the initial state, and round-trips
through JSON (:meth:`AlertTracker.to_dict` / :meth:`AlertTracker.from_dict`) so it
can live in a Faust table.

Every alert has a ``category``: ``drift`` (the data moved: PSI, KS, …),
``data_quality`` (a feature missing, or of the wrong type, more often than in the
reference: the statistics ``missing_rate`` and ``mismatch_rate``), ``concept_drift`` (the
model's error stream changed: statistic ``concept_drift``) or ``multivariate`` (the features
moved jointly: statistic ``domain_auc``); each has its own summary text and runbook section.
The alert record is in :mod:`~stream_drift.pipeline.alert_record`, its text in
:mod:`~stream_drift.pipeline.alert_text`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import msgspec

from stream_drift.config.policies import AlertPolicy
from stream_drift.pipeline.alert_record import (
    EVENT_CATEGORIES,
    Alert,
    AlertWindow,
    Observation,
    Status,
    TopBin,
    alert_category,
)
from stream_drift.pipeline.alert_text import format_timestamp, summary
from stream_drift.stats.result import DriftResult, Severity

__all__ = [
    "AlertPolicy",
    "AlertState",
    "AlertTracker",
    "alert_category",
    "alert_id",
    "resolve_level",
    "runbook_url",
]

#: Schema version of :meth:`AlertTracker.to_dict`.
STATE_FORMAT_VERSION: Final = 1

#: Section of docs/runbook.md for an alert of each severity: the anchor of its heading, which
#: is also the name of the Prometheus alert (``StreamDriftWarning``, ``StreamDriftCritical``).
RUNBOOK_SECTIONS: Final[Mapping[Severity, str]] = {
    Severity.WARNING: "streamdriftwarning",
    Severity.CRITICAL: "streamdriftcritical",
}

#: Section of docs/runbook.md for a data-quality alert of any severity (the Prometheus alert
#: ``StreamDriftDataQuality``).
DATA_QUALITY_SECTION: Final = "streamdriftdataquality"

#: Sections of docs/runbook.md for the categories with one section for both severities (the
#: Prometheus alerts ``StreamDriftDataQuality``, ``StreamDriftConceptDrift`` and
#: ``StreamDriftMultivariateDrift``).
CATEGORY_SECTIONS: Final[Mapping[str, str]] = {
    "data_quality": DATA_QUALITY_SECTION,
    "concept_drift": "streamdriftconceptdrift",
    "multivariate": "streamdriftmultivariatedrift",
}


def _check_timestamp(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of epoch seconds, got {value!r}")


def runbook_url(policy: AlertPolicy, severity: Severity, category: str = "drift") -> str:
    """Link to the runbook section of an alert; ``""`` when the policy has no base URL.

    Examples
    --------
    >>> policy = AlertPolicy(runbook_base_url="https://wiki.example.org/runbook")
    >>> runbook_url(policy, Severity.CRITICAL)
    'https://wiki.example.org/runbook#streamdriftcritical'
    >>> runbook_url(policy, Severity.WARNING, "data_quality")
    'https://wiki.example.org/runbook#streamdriftdataquality'
    >>> runbook_url(policy, Severity.CRITICAL, "concept_drift")
    'https://wiki.example.org/runbook#streamdriftconceptdrift'
    >>> runbook_url(AlertPolicy(), Severity.WARNING)
    ''
    """
    if not policy.runbook_base_url:
        return ""
    section = CATEGORY_SECTIONS.get(category) or RUNBOOK_SECTIONS[severity]
    return f"{policy.runbook_base_url}#{section}"


@dataclass(slots=True)
class AlertState:
    """What the tracker remembers about one ``(model, feature, statistic)`` key.

    Parameters
    ----------
    severity
        ``OK`` when no alert is open; otherwise the highest severity of the open
        incident (what ``stream_drift_alert_state`` exports).
    drift_streak
        Consecutive judged drifting windows (counted while no alert is open).
    clear_streak
        Consecutive judged windows below the lower level (counted while firing).
    first_detected_at
        Evaluation time of the first drifting window of the current streak or of
        the open incident; ``None`` when neither exists.
    resolved_at
        Evaluation time of the last resolve, for the cooldown; ``None`` if none.

    Examples
    --------
    >>> s = AlertState(Severity.WARNING, 0, 1, 1000.0, None)
    >>> AlertState.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    True
    """

    severity: Severity = Severity.OK
    drift_streak: int = 0
    clear_streak: int = 0
    first_detected_at: float | None = None
    resolved_at: float | None = None

    @property
    def is_open(self) -> bool:
        """``True`` while an alert is firing (or escalated)."""
        return self.severity is not Severity.OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (severity as its integer)."""
        out = asdict(self)
        out["severity"] = int(self.severity)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on malformed input."""
        try:
            state = cls(
                severity=Severity(int(data["severity"])),
                drift_streak=int(data["drift_streak"]),
                clear_streak=int(data["clear_streak"]),
                first_detected_at=_opt_float(data["first_detected_at"]),
                resolved_at=_opt_float(data["resolved_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed AlertState {dict(data)!r}: {exc}") from exc
        if state.drift_streak < 0 or state.clear_streak < 0:
            raise ValueError(f"malformed AlertState {dict(data)!r}: negative streak")
        if state.is_open and state.first_detected_at is None:
            raise ValueError(f"malformed AlertState {dict(data)!r}: open without first_detected_at")
        return state

    def _is_initial(self, now: float, cooldown: float) -> bool:
        """``True`` when this state behaves exactly like a fresh one from ``now`` on."""
        return (
            not self.is_open
            and self.drift_streak == 0
            and self.clear_streak == 0
            and (self.resolved_at is None or now - self.resolved_at >= cooldown)
        )


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number or null, got {value!r}")
    return float(value)


Key = tuple[str, str, str]


class AlertTracker:
    """Per-key alert state machine producing DESIGN §3.3 :class:`Alert` records.

    Parameters
    ----------
    policy
        The :class:`AlertPolicy` (stored as given).

    Examples
    --------
    >>> from stream_drift.stats.result import DriftResult, Severity
    >>> tracker = AlertTracker(AlertPolicy(fire_after=2, resolve_after=1, cooldown_seconds=0))
    >>> drift = DriftResult("psi", 0.31, 0.2, 1e-9, True, Severity.CRITICAL, 100_000, 5231)
    >>> calm = DriftResult("psi", 0.02, 0.2, 0.9, False, Severity.OK, 100_000, 5100)
    >>> def step(result, t):
    ...     alert = tracker.observe(model="fraud", model_version="7", feature="amount",
    ...                             result=result, window_start=t - 300, window_end=t,
    ...                             evaluated_at=t + 5, reference_id="ref-1")
    ...     return alert and alert.status
    >>> [step(r, t) for r, t in [(drift, 1_764_237_600), (drift, 1_764_237_900),
    ...                          (drift, 1_764_238_200), (calm, 1_764_238_500)]]
    [None, 'firing', None, 'resolved']
    >>> tracker.state("fraud", "amount", "psi")
    <Severity.OK: 0>
    """

    __slots__ = ("_states", "policy")

    def __init__(self, policy: AlertPolicy | None = None) -> None:
        self.policy = AlertPolicy() if policy is None else policy
        self._states: dict[Key, AlertState] = {}

    def __repr__(self) -> str:
        return f"AlertTracker({self.policy!r}, keys={len(self._states)})"

    # ------------------------------------------------------------------ queries
    def state(self, model: str, feature: str, statistic: str) -> Severity:
        """Severity of the open alert for a key, ``Severity.OK`` when none is open."""
        st = self._states.get((model, feature, statistic))
        return Severity.OK if st is None else st.severity

    def get(self, model: str, feature: str, statistic: str) -> AlertState:
        """A copy of a key's :class:`AlertState` (a fresh one for an unknown key)."""
        st = self._states.get((model, feature, statistic))
        return AlertState() if st is None else AlertState(**asdict(st))

    def open_alerts(self) -> Iterator[tuple[Key, AlertState]]:
        """``((model, feature, statistic), state)`` of every key with an open alert."""
        for key, st in self._states.items():
            if st.is_open:
                yield key, st

    def __len__(self) -> int:
        """Number of keys holding non-initial state."""
        return len(self._states)

    # ----------------------------------------------------------------- updating
    def observe(
        self,
        *,
        model: str,
        model_version: str,
        feature: str,
        result: DriftResult,
        window_start: float,
        window_end: float,
        evaluated_at: float,
        reference_id: str,
        top_bins: Sequence[Mapping[str, object]] = (),
    ) -> Alert | None:
        """Feed one evaluation; return the :class:`Alert` on a state change, else ``None``.

        Parameters
        ----------
        model, model_version, feature
            Identify the series; ``result.statistic`` completes the key. The key does
            not include ``model_version``: an incident spans a version roll-out.
        result
            The statistic's verdict on this window.
        window_start, window_end
            Event-time bounds of the window, epoch seconds.
        evaluated_at
            When the evaluation happened, epoch seconds; the only clock the tracker
            uses (cooldown and ``first_detected_at``).
        reference_id
            Id of the reference profile compared with.
        top_bins
            Most changed bins, ``{"bin": str, "reference": float, "current": float}``
            each, copied into the alert.

        Returns
        -------
        Alert or None
            The DESIGN §3.3 alert (with ``summary`` and ``dedup_key``).

        Raises
        ------
        ValueError
            On non-finite timestamps, ``window_end < window_start`` or an empty
            ``result.statistic``.
        """
        _check_timestamp("window_start", window_start)
        _check_timestamp("window_end", window_end)
        _check_timestamp("evaluated_at", evaluated_at)
        if window_end < window_start:
            raise ValueError(f"window_end {window_end!r} is before window_start {window_start!r}")
        if not result.statistic:
            raise ValueError("result.statistic must be a non-empty name")
        if not result.judged:
            return None

        key: Key = (model, feature, result.statistic)
        st = self._states.get(key)
        if st is None:
            st = AlertState()
        policy = self.policy
        status: Status | None = None
        incident_severity = st.severity
        incident_start = st.first_detected_at

        if not st.is_open:
            if result.is_drift:
                if st.drift_streak == 0:
                    st.first_detected_at = float(evaluated_at)
                st.drift_streak += 1
                cooling = (
                    st.resolved_at is not None
                    and evaluated_at - st.resolved_at < policy.cooldown_seconds
                )
                # A detection is an event (EVENT_CATEGORIES): one window with one fires.
                fire_after = (
                    1 if alert_category(result.statistic) in EVENT_CATEGORIES else policy.fire_after
                )
                if st.drift_streak >= fire_after and not cooling:
                    status = "firing"
                    # A drifting window is at least a warning, whatever the statistic said.
                    st.severity = max(result.severity, Severity.WARNING)
                    st.drift_streak = 0
                    st.clear_streak = 0
                    st.resolved_at = None
                    incident_severity = st.severity
                    incident_start = st.first_detected_at
            else:
                st.drift_streak = 0
                st.first_detected_at = None
        elif result.is_drift:
            st.clear_streak = 0
            if result.severity > st.severity:
                status = "escalated"
                st.severity = result.severity
                incident_severity = st.severity
        elif result.value < resolve_level(result, policy.resolve_ratio):
            st.clear_streak += 1
            if st.clear_streak >= policy.resolve_after:
                status = "resolved"
                st.severity = Severity.OK
                st.clear_streak = 0
                st.drift_streak = 0
                st.first_detected_at = None
                st.resolved_at = float(evaluated_at)
        else:  # hysteresis band: keep firing, restart the resolve count
            st.clear_streak = 0

        if st._is_initial(evaluated_at, policy.cooldown_seconds):
            self._states.pop(key, None)
        else:
            self._states[key] = st

        if status is None:
            return None
        assert incident_start is not None  # set whenever an incident is open
        seen = Observation(
            model=model,
            model_version=model_version,
            feature=feature,
            result=result,
            window_start=window_start,
            window_end=window_end,
            evaluated_at=evaluated_at,
            reference_id=reference_id,
            top_bins=msgspec.convert(list(top_bins), tuple[TopBin, ...]),
        )
        return self._alert(seen, status, incident_severity, incident_start)

    def reset(self) -> None:
        """Forget every key (all alerts considered resolved, no cooldown)."""
        self._states.clear()

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot of the policy and every key's state.

        Examples
        --------
        >>> AlertTracker().to_dict()["states"]
        []
        """
        return {
            "version": STATE_FORMAT_VERSION,
            "policy": self.policy.model_dump(),
            "states": [
                {"model": m, "feature": f, "statistic": s, **st.to_dict()}
                for (m, f, s), st in sorted(self._states.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], policy: AlertPolicy | None = None) -> AlertTracker:
        """Rebuild a tracker from :meth:`to_dict` output.

        Parameters
        ----------
        data
            A (JSON-decoded) snapshot.
        policy
            Use this policy instead of the stored one (e.g. after a config change).

        Raises
        ------
        ValueError
            On an unknown format version or malformed content.

        Examples
        --------
        >>> t = AlertTracker(AlertPolicy(fire_after=3))
        >>> AlertTracker.from_dict(json.loads(json.dumps(t.to_dict()))).policy.fire_after
        3
        """
        version = data.get("version")
        if version != STATE_FORMAT_VERSION:
            raise ValueError(
                f"unsupported AlertTracker state version {version!r} "
                f"(expected {STATE_FORMAT_VERSION})"
            )
        if policy is None:
            raw = data.get("policy")
            if not isinstance(raw, Mapping):
                raise ValueError("AlertTracker state has no 'policy' object")
            try:
                policy = AlertPolicy.model_validate(raw)
            except ValueError as exc:
                raise ValueError(f"malformed AlertTracker policy: {exc}") from exc
        tracker = cls(policy)
        states = data.get("states")
        if not isinstance(states, list):
            raise ValueError("AlertTracker state has no 'states' list")
        for entry in states:
            if not isinstance(entry, Mapping):
                raise ValueError(f"malformed AlertTracker state entry {entry!r}")
            try:
                key = (str(entry["model"]), str(entry["feature"]), str(entry["statistic"]))
            except KeyError as exc:
                raise ValueError(f"AlertTracker state entry lacks {exc}") from exc
            tracker._states[key] = AlertState.from_dict(entry)
        return tracker

    # ------------------------------------------------------------------ helpers
    def _alert(self, seen: Observation, status: Status, severity: Severity, since: float) -> Alert:
        """The alert announcing ``status`` of the incident first detected at ``since``."""
        result = seen.result
        category = alert_category(result.statistic)
        return Alert(
            alert_id=alert_id(seen.model, seen.feature, result.statistic, since),
            status=status,
            severity=severity.label,
            model=seen.model,
            model_version=seen.model_version,
            feature=seen.feature,
            statistic=result.statistic,
            category=category,
            value=float(result.value),
            threshold=float(result.threshold),
            p_value=None if result.p_value is None else float(result.p_value),
            window=AlertWindow(
                start=format_timestamp(seen.window_start), end=format_timestamp(seen.window_end)
            ),
            n_current=int(result.n_current),
            n_reference=int(result.n_reference),
            reference_id=seen.reference_id,
            top_bins=_alert_bins(seen) if category == "data_quality" else seen.top_bins,
            first_detected_at=format_timestamp(since),
            evaluated_at=format_timestamp(seen.evaluated_at),
            runbook_url=runbook_url(self.policy, severity, category),
            dedup_key=f"{seen.model}/{seen.feature}/{result.statistic}",
            summary=summary(
                seen, status, severity, since, resolve_level(result, self.policy.resolve_ratio)
            ),
        )


def _alert_bins(seen: Observation) -> tuple[TopBin, ...]:
    """The bins of a data-quality alert: the flagged values' share, when the rate is known."""
    result = seen.result
    reference_rate = getattr(result, "reference_rate", None)
    if not isinstance(reference_rate, float):
        return seen.top_bins
    # The "bin" that moved is the flagged values' share, not any histogram bin.
    label = "(missing)" if result.statistic == "missing_rate" else "(type mismatch)"
    return (TopBin(bin=label, reference=reference_rate, current=float(result.value)),)


def resolve_level(result: DriftResult, resolve_ratio: float) -> float:
    """The lower hysteresis level: a window below it counts towards resolving.

    ``threshold × resolve_ratio`` for a drift statistic (whose unchanged value is 0). A rate
    (``missing_rate``, ``mismatch_rate``) is normally at the reference's rate, not 0, so the
    band is taken above that rate: ``r + (threshold − r) × resolve_ratio``. A feature null in
    40 % of the reference, threshold 45 %, resolves below 44 % (not below 36 %, which it
    would never reach).

    Examples
    --------
    >>> from stream_drift.stats.quality import MissingRate
    >>> r = MissingRate().evaluate([60_000, 40_000], [2500, 2500])
    >>> r.threshold, round(resolve_level(r, 0.8), 4)
    (0.45, 0.44)
    >>> resolve_level(DriftResult("psi", 0.3, 0.2, None, True, Severity.CRITICAL, 1, 1), 0.8)
    0.16000000000000003
    """
    base = getattr(result, "reference_rate", 0.0)
    if not isinstance(base, float) or not 0.0 <= base <= result.threshold:
        base = 0.0
    return base + (result.threshold - base) * resolve_ratio


def alert_id(model: str, feature: str, statistic: str, first_detected_at: float) -> str:
    """Stable id of one incident: a hash of the key and its first detection time.

    The same incident keeps its id through ``firing``, ``escalated`` and
    ``resolved``; replaying the same evaluations yields the same id (idempotent for
    downstream deduplication).

    Examples
    --------
    >>> a = alert_id("fraud", "amount", "psi", 1764237600.0)
    >>> len(a), a == alert_id("fraud", "amount", "psi", 1764237600.0)
    (32, True)
    >>> a == alert_id("fraud", "amount", "psi", 1764237900.0)
    False
    """
    payload = json.dumps([model, feature, statistic, repr(float(first_detected_at))])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
