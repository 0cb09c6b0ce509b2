"""Alert state machine: hysteresis, cooldown and deduplication of drift findings.

Every evaluation of one statistic on one feature yields a
:class:`~stream_drift.stats.result.DriftResult`. Publishing each of them would ring
the on-call phone once per window; :class:`AlertTracker` turns the stream of
results into the few *state changes* an SRE needs (DESIGN §3.3):

``firing``
    after ``fire_after`` consecutive judged windows with ``is_drift``;
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

Every alert has a ``category``: ``drift`` (the data moved: PSI, KS, …) or
``data_quality`` (a feature missing, or of the wrong type, more often than in the
reference: the statistics ``missing_rate`` and ``mismatch_rate``); each has its own
summary text and runbook section.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stream_drift.stats.quality import QUALITY_STATISTICS
from stream_drift.stats.result import DriftResult, Severity

__all__ = [
    "AlertPolicy",
    "AlertState",
    "AlertTracker",
    "alert_category",
    "alert_id",
    "format_alert_line",
    "format_timestamp",
]

#: Statuses an alert can carry, in the order an incident goes through them.
STATUSES: Final = ("firing", "escalated", "resolved")

#: Schema version of :meth:`AlertTracker.to_dict`.
STATE_FORMAT_VERSION: Final = 1

_STAT_NAMES: Final[Mapping[str, str]] = {
    "psi": "PSI",
    "kl": "KL",
    "js": "JS distance",
    "ks": "KS",
    "chi2": "chi-square",
    "missing_rate": "missing rate",
    "mismatch_rate": "type-mismatch rate",
}

#: Section of docs/runbook.md for an alert of each severity: the anchor of its heading, which
#: is also the name of the Prometheus alert (``StreamDriftWarning``, ``StreamDriftCritical``).
RUNBOOK_SECTIONS: Final[Mapping[Severity, str]] = {
    Severity.WARNING: "streamdriftwarning",
    Severity.CRITICAL: "streamdriftcritical",
}

#: Section of docs/runbook.md for a data-quality alert of any severity (the Prometheus alert
#: ``StreamDriftDataQuality``).
DATA_QUALITY_SECTION: Final = "streamdriftdataquality"


def alert_category(statistic: str) -> str:
    """``data_quality`` for the missing and type-mismatch rates, ``drift`` for the others.

    Examples
    --------
    >>> alert_category("mismatch_rate"), alert_category("psi")
    ('data_quality', 'drift')
    """
    return "data_quality" if statistic in QUALITY_STATISTICS else "drift"


def check_runbook_base_url(url: object) -> str | None:
    """Why ``url`` cannot be a runbook base URL, or ``None`` when it can.

    Examples
    --------
    >>> check_runbook_base_url("https://wiki.example.org/stream-drift/runbook.md") is None
    True
    >>> check_runbook_base_url("")  is None
    True
    >>> check_runbook_base_url("docs/runbook.md")
    "must be an http(s) URL or empty, got 'docs/runbook.md'"
    """
    if not isinstance(url, str):
        return f"must be a string, got {url!r}"
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        return f"must be an http(s) URL or empty, got {url!r}"
    if "#" in url:
        return f"must not contain '#' (each alert appends its section's anchor), got {url!r}"
    return None


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"AlertPolicy.{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"AlertPolicy.{name} must be >= {minimum}, got {value!r}")


def _check_timestamp(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of epoch seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When a drift finding becomes an alert, and when the alert ends.

    Parameters
    ----------
    fire_after
        Consecutive judged windows with ``is_drift`` needed to fire (>= 1).
    resolve_after
        Consecutive judged windows below ``threshold * resolve_ratio`` needed to
        resolve (>= 1).
    resolve_ratio
        Lower hysteresis level as a fraction of the threshold, in ``(0, 1]``; ``1``
        disables the band.
    cooldown_seconds
        Evaluation time after a resolve during which the same key cannot fire
        again (>= 0).
    runbook_base_url
        Where the team's copy of ``docs/runbook.md`` is served (``http://`` or
        ``https://``, no ``#``). Each alert links to its section:
        ``<base>#streamdriftwarning`` or ``<base>#streamdriftcritical`` (drift),
        ``<base>#streamdriftdataquality`` (data quality). ``""`` (the
        default) for no link: the alert then carries ``"runbook_url": ""``, never an
        invented address.

    Raises
    ------
    ValueError
        When a field is out of range; the message names the field.

    Examples
    --------
    >>> AlertPolicy(fire_after=3).resolve_after
    2
    >>> AlertPolicy(resolve_ratio=1.5)
    Traceback (most recent call last):
    ...
    ValueError: AlertPolicy.resolve_ratio must be in (0, 1], got 1.5
    """

    fire_after: int = 2
    resolve_after: int = 2
    resolve_ratio: float = 0.8
    cooldown_seconds: float = 600.0
    runbook_base_url: str = ""

    def __post_init__(self) -> None:
        _check_int("fire_after", self.fire_after, 1)
        _check_int("resolve_after", self.resolve_after, 1)
        ratio = self.resolve_ratio
        if (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not (0.0 < ratio <= 1.0)
        ):
            raise ValueError(f"AlertPolicy.resolve_ratio must be in (0, 1], got {ratio!r}")
        cooldown = self.cooldown_seconds
        if (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, int | float)
            or not math.isfinite(cooldown)
            or cooldown < 0
        ):
            raise ValueError(
                f"AlertPolicy.cooldown_seconds must be a finite number >= 0, got {cooldown!r}"
            )
        problem = check_runbook_base_url(self.runbook_base_url)
        if problem is not None:
            raise ValueError(f"AlertPolicy.runbook_base_url {problem}")

    def runbook_url(self, severity: Severity, category: str = "drift") -> str:
        """Link to the runbook section of an alert; ``""`` without a base.

        Examples
        --------
        >>> policy = AlertPolicy(runbook_base_url="https://wiki.example.org/runbook")
        >>> policy.runbook_url(Severity.CRITICAL)
        'https://wiki.example.org/runbook#streamdriftcritical'
        >>> policy.runbook_url(Severity.WARNING, "data_quality")
        'https://wiki.example.org/runbook#streamdriftdataquality'
        >>> AlertPolicy().runbook_url(Severity.WARNING)
        ''
        """
        if not self.runbook_base_url:
            return ""
        section = DATA_QUALITY_SECTION if category == "data_quality" else RUNBOOK_SECTIONS[severity]
        return f"{self.runbook_base_url}#{section}"


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
    """Per-key alert state machine producing DESIGN §3.3 alert dicts.

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
    ...     return alert and alert["status"]
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
    ) -> dict[str, object] | None:
        """Feed one evaluation; return the alert dict on a state change, else ``None``.

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
            each, copied into the alert as given.

        Returns
        -------
        dict or None
            The DESIGN §3.3 alert plus ``summary`` and ``dedup_key``.

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
        status: str | None = None
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
                if st.drift_streak >= policy.fire_after and not cooling:
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
        return self._build_alert(
            status=status,
            severity=incident_severity,
            model=model,
            model_version=model_version,
            feature=feature,
            result=result,
            window_start=window_start,
            window_end=window_end,
            evaluated_at=evaluated_at,
            reference_id=reference_id,
            top_bins=top_bins,
            first_detected_at=incident_start,
        )

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
            "policy": asdict(self.policy),
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
                policy = AlertPolicy(**raw)
            except TypeError as exc:
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
    def _build_alert(
        self,
        *,
        status: str,
        severity: Severity,
        model: str,
        model_version: str,
        feature: str,
        result: DriftResult,
        window_start: float,
        window_end: float,
        evaluated_at: float,
        reference_id: str,
        top_bins: Sequence[Mapping[str, object]],
        first_detected_at: float,
    ) -> dict[str, object]:
        category = alert_category(result.statistic)
        bins = [dict(b) for b in top_bins]
        reference_rate = getattr(result, "reference_rate", None)
        if category == "data_quality" and isinstance(reference_rate, float):
            # The "bin" that moved is the flagged values' share, not any histogram bin.
            label = "(missing)" if result.statistic == "missing_rate" else "(type mismatch)"
            bins = [{"bin": label, "reference": reference_rate, "current": float(result.value)}]
        alert: dict[str, object] = {
            "alert_id": alert_id(model, feature, result.statistic, first_detected_at),
            "status": status,
            "severity": severity.label,
            "model": model,
            "model_version": model_version,
            "feature": feature,
            "statistic": result.statistic,
            "category": category,
            "value": float(result.value),
            "threshold": float(result.threshold),
            "p_value": None if result.p_value is None else float(result.p_value),
            "window": {
                "start": format_timestamp(window_start),
                "end": format_timestamp(window_end),
            },
            "n_current": int(result.n_current),
            "n_reference": int(result.n_reference),
            "reference_id": reference_id,
            "top_bins": bins,
            "first_detected_at": format_timestamp(first_detected_at),
            "evaluated_at": format_timestamp(evaluated_at),
            "runbook_url": self.policy.runbook_url(severity, category),
            "dedup_key": f"{model}/{feature}/{result.statistic}",
        }
        alert["summary"] = _summary(
            status=status,
            severity=severity,
            model=model,
            model_version=model_version,
            feature=feature,
            result=result,
            lower=resolve_level(result, self.policy.resolve_ratio),
            window_start=window_start,
            window_end=window_end,
            first_detected_at=first_detected_at,
            evaluated_at=evaluated_at,
            top_bins=bins,
        )
        return alert


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


# ---------------------------------------------------------------------- formatting
def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def format_timestamp(ts: float) -> str:
    """RFC 3339 UTC string of epoch seconds (milliseconds shown only when non-zero).

    Examples
    --------
    >>> format_timestamp(1764237600)
    '2025-11-27T10:00:00Z'
    >>> format_timestamp(1764237600.25)
    '2025-11-27T10:00:00.250Z'
    """
    dt = _utc(ts)
    if dt.microsecond // 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(x: float) -> str:
    """Short human form of a statistic value: 0.31, 0.20, 0.043, 1.5e-05, 12,345."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 10_000:
        return f"{x:,.0f}"
    if mag >= 0.1:
        return f"{x:.2f}"
    return f"{x:.2g}"


def _pair(value: float, threshold: float) -> tuple[str, str]:
    """Format two numbers so that different values never print identically."""
    v, t = _num(value), _num(threshold)
    if v == t and value != threshold:
        v, t = f"{value:.6g}", f"{threshold:.6g}"
    return v, t


def _pct(p: object) -> str:
    if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
        return "?"
    return f"{p * 100:.3g}%"


def _hm(dt: datetime) -> str:
    return dt.strftime("%H:%M:%S" if dt.second or dt.microsecond else "%H:%M")


def _window_text(start: float, end: float) -> str:
    """``2025-11-27 10:00–10:05 UTC`` (dates repeated only when the day changes)."""
    a, b = _utc(start), _utc(end)
    if a.date() == b.date():
        return f"{a:%Y-%m-%d} {_hm(a)}–{_hm(b)} UTC"
    return f"{a:%Y-%m-%d} {_hm(a)} – {b:%Y-%m-%d} {_hm(b)} UTC"


def _duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days {hours % 24} h"


def _most_changed(bins: Sequence[Mapping[str, object]]) -> str | None:
    best: tuple[float, Mapping[str, object]] | None = None
    for b in bins:
        ref, cur = b.get("reference"), b.get("current")
        if not (isinstance(ref, int | float) and isinstance(cur, int | float)):
            continue
        delta = abs(float(cur) - float(ref))
        if math.isfinite(delta) and (best is None or delta > best[0]):
            best = (delta, b)
    if best is None:
        return None
    b = best[1]
    return f"most changed bin {b.get('bin', '?')}: {_pct(b['reference'])} → {_pct(b['current'])}"


def _summary(
    *,
    status: str,
    severity: Severity,
    model: str,
    model_version: str,
    feature: str,
    result: DriftResult,
    lower: float,
    window_start: float,
    window_end: float,
    first_detected_at: float,
    evaluated_at: float,
    top_bins: Sequence[Mapping[str, object]],
) -> str:
    """One sentence an SRE understands from the text alone."""
    version = model_version.strip()
    if not version:
        who = model
    elif version[:1] in ("v", "V"):
        who = f"{model} {version}"
    else:
        who = f"{model} v{version}"
    if alert_category(result.statistic) == "data_quality":
        return _quality_summary(
            status=status,
            severity=severity,
            who=who,
            feature=feature,
            result=result,
            lower=lower,
            window_start=window_start,
            window_end=window_end,
            first_detected_at=first_detected_at,
            evaluated_at=evaluated_at,
        )
    stat = _STAT_NAMES.get(result.statistic, result.statistic.upper())
    p = "" if result.p_value is None else f", p={result.p_value:.2g}"
    where = (
        f"over window {_window_text(window_start, window_end)} on {result.n_current:,} events "
        f"vs {result.n_reference:,} reference"
    )
    if status == "resolved":
        v, lo = _pair(result.value, lower)
        return (
            f"{who}: feature '{feature}' back to normal ({stat} {v} < resolve level {lo}, "
            f"threshold {_num(result.threshold)}{p}) {where}; {severity.label} drift lasted "
            f"{_duration(evaluated_at - first_detected_at)} since "
            f"{_utc(first_detected_at):%Y-%m-%d %H:%M} UTC."
        )
    v, t = _pair(result.value, result.threshold)
    verb = "drifted" if status == "firing" else f"drift escalated to {severity.label}"
    tail = _most_changed(top_bins)
    return f"{who}: feature '{feature}' {verb} ({stat} {v} ≥ threshold {t}{p}) {where}" + (
        f"; {tail}." if tail else "."
    )


def _flagged_text(result: DriftResult) -> str:
    """What the flagged values of a data-quality statistic are, in words."""
    if result.statistic == "missing_rate":
        return "are missing (absent or null)"
    kind = getattr(result, "kind", "")
    if kind == "numeric":
        return "are not numbers (type mismatch)"
    if kind == "categorical":
        return "are lists or objects, not categories (type mismatch)"
    return "are of the wrong type (type mismatch)"


def _quality_summary(
    *,
    status: str,
    severity: Severity,
    who: str,
    feature: str,
    result: DriftResult,
    lower: float,
    window_start: float,
    window_end: float,
    first_detected_at: float,
    evaluated_at: float,
) -> str:
    """The sentence of a data-quality alert: rates in percent, against the reference's.

    Examples
    --------
    >>> from stream_drift.stats.quality import MismatchRate
    >>> import dataclasses
    >>> r = dataclasses.replace(MismatchRate().evaluate([20_000, 0], [1160, 840]), kind="numeric")
    >>> print(_quality_summary(status="firing", severity=Severity.WARNING, who="fraud v7",
    ...     feature="age", result=r, lower=0.04, window_start=1764213000,
    ...     window_end=1764213300, first_detected_at=1764213305, evaluated_at=1764213305))
    fraud v7: feature 'age' data quality — 42% of values are not numbers (type mismatch) vs 0% in the reference (threshold 5%) over window 2025-11-27 03:10–03:15 UTC on 2,000 events.
    """  # noqa: E501
    reference = getattr(result, "reference_rate", None)
    versus = f" vs {_pct(reference)} in the reference" if isinstance(reference, float) else ""
    share = f"{_pct(result.value)} of values {_flagged_text(result)}{versus}"
    where = f"over window {_window_text(window_start, window_end)} on {result.n_current:,} events"
    if status == "resolved":
        return (
            f"{who}: feature '{feature}' data quality back to normal — {share}, below the "
            f"resolve level {_pct(lower)} (threshold {_pct(result.threshold)}) {where}; "
            f"{severity.label} problem lasted {_duration(evaluated_at - first_detected_at)} "
            f"since {_utc(first_detected_at):%Y-%m-%d %H:%M} UTC."
        )
    head = "data quality" if status == "firing" else f"data quality worse ({severity.label})"
    return (
        f"{who}: feature '{feature}' {head} — {share} (threshold {_pct(result.threshold)}) {where}."
    )


def _parse_rfc3339(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def format_alert_line(alert: Mapping[str, object]) -> str:
    """One readable line for ``stream-drift alerts``; tolerant of missing fields.

    Layout: evaluation time, status, severity, ``model/feature/statistic``, value vs
    threshold, window, then the summary after ``|``.

    Examples
    --------
    >>> line = format_alert_line({
    ...     "status": "firing", "severity": "critical", "model": "fraud",
    ...     "feature": "amount", "statistic": "psi", "value": 0.31, "threshold": 0.2,
    ...     "window": {"start": "2025-11-27T10:00:00Z", "end": "2025-11-27T10:05:00Z"},
    ...     "evaluated_at": "2025-11-27T10:05:07Z", "summary": "fraud v7: ..."})
    >>> print(line)  # doctest: +NORMALIZE_WHITESPACE
    2025-11-27T10:05:07Z FIRING CRITICAL fraud/amount/psi 0.31 vs 0.20
    window 2025-11-27 10:00–10:05 UTC | fraud v7: ...
    """

    def text(name: str) -> str:
        value = alert.get(name)
        return "?" if value is None else str(value)

    def number(name: str) -> str:
        value = alert.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _num(float(value))
        return "?"

    window = alert.get("window")
    span = "?"
    if isinstance(window, Mapping):
        start, end = _parse_rfc3339(window.get("start")), _parse_rfc3339(window.get("end"))
        if start is not None and end is not None:
            span = _window_text(start, end)
        else:
            span = f"{window.get('start', '?')} → {window.get('end', '?')}"
    return (
        f"{text('evaluated_at')} {text('status').upper():<9} {text('severity').upper():<8} "
        f"{text('model')}/{text('feature')}/{text('statistic')} "
        f"{number('value')} vs {number('threshold')} window {span} | {text('summary')}"
    )
