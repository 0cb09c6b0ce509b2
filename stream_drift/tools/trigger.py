"""Act on alerts: run a command or POST a webhook once per firing or escalated alert.

The pure parts of ``stream-drift alerts --exec/--webhook``: which alerts trigger
(:class:`AlertFilter`), the environment a command gets (:func:`alert_env`), the retry policy
(:func:`backoff_delays`, :func:`deliver`) and the bounded memory of handled alerts
(:class:`HandledKeys`); plus the two actions, :func:`run_command` (a child in its own process
group, killed with it on timeout) and :func:`post_webhook` (``urllib``, success = 2xx).
The Kafka side (consumer group, commit after success) is in :mod:`stream_drift.tools.watch`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from stream_drift.pipeline.alert_record import Alert

SEVERITY_RANK: Mapping[str, int] = {"warning": 1, "critical": 2}
"""Alert severities, lowest first (``--severity`` is a minimum)."""

TRIGGER_STATUSES: frozenset[str] = frozenset({"firing", "escalated"})
"""Statuses that trigger by default (``resolved`` only with ``--on resolved``)."""

ENV_FIELDS: tuple[str, ...] = (
    "alert_id",
    "status",
    "severity",
    "model",
    "model_version",
    "feature",
    "statistic",
    "value",
    "threshold",
    "summary",
    "runbook_url",
    "category",
)
"""Alert fields a command gets as ``STREAM_DRIFT_ALERT_<FIELD>`` (``alert_id`` as ``..._ID``)."""

ENV_PREFIX = "STREAM_DRIFT_ALERT_"
KILL_GRACE_SECONDS = 5.0
"""After a timeout: seconds between SIGTERM and SIGKILL to the command's process group."""


def alert_fields(alert: Alert | Mapping[str, Any]) -> Mapping[str, Any]:
    """The fields of an alert by name: a typed :class:`Alert`'s, or the JSON object's as is.

    A record that did not decode as an :class:`Alert` (an older or foreign producer) is still
    acted on, its missing fields empty (README, "Act on alerts").

    Examples
    --------
    >>> alert_fields({"model": "fraud"})
    {'model': 'fraud'}
    """
    return msgspec.structs.asdict(alert) if isinstance(alert, Alert) else alert


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts trigger an action.

    Parameters
    ----------
    statuses
        Alert statuses that trigger (default: firing and escalated).
    min_severity
        Lowest severity that triggers (``"warning"``: all, ``"critical"``: critical only).
    models
        Models that trigger; empty: every model.

    Examples
    --------
    >>> f = AlertFilter(min_severity="critical", models=frozenset({"fraud"}))
    >>> f.reason_to_skip({"status": "firing", "severity": "critical", "model": "fraud"}) is None
    True
    >>> f.reason_to_skip({"status": "firing", "severity": "warning", "model": "fraud"})
    'severity warning below critical'
    >>> AlertFilter().reason_to_skip({"status": "resolved", "severity": "warning", "model": "m"})
    'status resolved'
    """

    statuses: frozenset[str] = TRIGGER_STATUSES
    min_severity: str = "warning"
    models: frozenset[str] = frozenset()

    def reason_to_skip(self, alert: Alert | Mapping[str, Any]) -> str | None:
        """Why ``alert`` does not trigger, or ``None`` when it does."""
        fields = alert_fields(alert)
        status = str(fields.get("status", ""))
        if status not in self.statuses:
            return f"status {status or '(none)'}"
        severity = str(fields.get("severity", ""))
        if SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK[self.min_severity]:
            return f"severity {severity or '(none)'} below {self.min_severity}"
        model = str(fields.get("model", ""))
        if self.models and model not in self.models:
            return f"model {model or '(none)'} not selected"
        return None


def alert_key(alert: Alert | Mapping[str, Any]) -> tuple[str, str]:
    """The de-duplication key of an alert: ``(alert_id, status)``.

    An escalation of an incident has the incident's ``alert_id`` and a new status, so it
    triggers again; the same state change seen twice does not.

    Examples
    --------
    >>> alert_key({"alert_id": "a1", "status": "escalated"})
    ('a1', 'escalated')
    """
    fields = alert_fields(alert)
    return (str(fields.get("alert_id", "")), str(fields.get("status", "")))


def _env_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("\x00", "")


def alert_env(
    alert: Alert | Mapping[str, Any], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a command run for ``alert``: ``base`` plus its main fields.

    Each field of :data:`ENV_FIELDS` becomes ``STREAM_DRIFT_ALERT_<FIELD>`` (``alert_id`` is
    ``STREAM_DRIFT_ALERT_ID``); a missing or null field is ``""``. Values are passed as
    environment variables, never substituted into the command line.

    Examples
    --------
    >>> env = alert_env({"alert_id": "a1", "model": "fraud", "value": 0.25}, base={})
    >>> env["STREAM_DRIFT_ALERT_ID"], env["STREAM_DRIFT_ALERT_MODEL"]
    ('a1', 'fraud')
    >>> env["STREAM_DRIFT_ALERT_VALUE"], env["STREAM_DRIFT_ALERT_SEVERITY"]
    ('0.25', '')
    """
    env = dict(os.environ if base is None else base)
    fields = alert_fields(alert)
    for field in ENV_FIELDS:
        name = "ID" if field == "alert_id" else field.upper()
        env[ENV_PREFIX + name] = _env_text(fields.get(field))
    return env


def backoff_delays(retries: int, first: float = 1.0, cap: float = 60.0) -> list[float]:
    """Seconds to wait before each retry: ``first``, doubling, at most ``cap``.

    Examples
    --------
    >>> backoff_delays(3)
    [1.0, 2.0, 4.0]
    >>> backoff_delays(5, first=10, cap=30)
    [10.0, 20.0, 30.0, 30.0, 30.0]
    >>> backoff_delays(0)
    []
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    return [float(min(cap, first * 2**i)) for i in range(retries)]


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one try of an action: ``ok`` and a short ``detail`` for the log."""

    ok: bool
    detail: str


def deliver(
    action: Callable[[], Attempt],
    delays: Iterable[float],
    *,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda _msg: None,
) -> tuple[Attempt, int]:
    """Try ``action``, then once more after each of ``delays`` while it fails.

    Returns
    -------
    tuple[Attempt, int]
        The last attempt and the number of tries.

    Examples
    --------
    >>> outcomes = iter([Attempt(False, "exit 1"), Attempt(True, "exit 0")])
    >>> waited = []
    >>> deliver(lambda: next(outcomes), [1.0, 2.0], sleep=waited.append)
    (Attempt(ok=True, detail='exit 0'), 2)
    >>> waited
    [1.0]
    """
    tries = 1
    result = action()
    for delay in delays:
        if result.ok:
            break
        log(f"attempt {tries} failed ({result.detail}); retrying in {delay:g} s")
        sleep(delay)
        tries += 1
        result = action()
    return result, tries


class HandledKeys:
    """A bounded, insertion-ordered set: the oldest key is forgotten beyond ``size``.

    Examples
    --------
    >>> keys = HandledKeys(size=2)
    >>> for k in ("a", "b", "c"):
    ...     keys.add(k)
    >>> "a" in keys, "c" in keys, len(keys)
    (False, True, 2)
    """

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._keys: OrderedDict[object, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: object) -> None:
        """Remember ``key`` (forgetting the oldest when full)."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, SIGKILL it after :data:`KILL_GRACE_SECONDS`."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(command: str, payload: bytes, env: Mapping[str, str], timeout: float) -> Attempt:
    """Run ``command`` with a shell, ``payload`` on stdin, in a new process group.

    Success is exit status 0 within ``timeout`` seconds. On timeout the whole process group
    of the child (the command and what it started) gets SIGTERM, then SIGKILL.
    """
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        return Attempt(False, f"cannot start: {exc}")
    try:
        proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return Attempt(False, f"timed out after {timeout:g} s (pid {proc.pid} killed)")
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode == 0:
        return Attempt(True, "exit 0")
    return Attempt(False, f"exit status {proc.returncode}")


def post_webhook(url: str, payload: bytes, timeout: float) -> Attempt:
    """POST ``payload`` (JSON) to ``url``; success is an HTTP 2xx answer within ``timeout``."""
    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "stream-drift"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        return Attempt(False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}")
    if 200 <= status < 300:
        return Attempt(True, f"HTTP {status}")
    return Attempt(False, f"HTTP {status}")
