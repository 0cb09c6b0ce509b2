"""The one result type every statistic returns."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class Severity(enum.IntEnum):
    """How bad a drift is; the integer is the ``stream_drift_alert_state`` gauge value.

    Examples
    --------
    >>> int(Severity.CRITICAL), Severity.WARNING.label
    (2, 'warning')
    """

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One statistic's verdict on one feature in one window.

    Parameters
    ----------
    statistic
        Short name: ``psi``, ``kl``, ``js``, ``ks`` or ``chi2``.
    value
        The statistic's value, in its own units.
    threshold
        The value at or above which the window counts as drifted (same units as ``value``).
    p_value
        Probability of a value at least this large when nothing drifted, or ``None``.
    is_drift
        ``True`` when the window was judged and ``value >= threshold``.
    severity
        :class:`Severity` of the finding (``OK`` when not drifted or not judged).
    n_reference, n_current
        Non-missing observations behind each side.
    judged
        ``False`` when the window had too few samples to be judged at all.

    Examples
    --------
    >>> r = DriftResult("psi", 0.31, 0.2, 1e-9, True, Severity.CRITICAL, 100000, 5231)
    >>> r.to_dict()["severity"]
    'critical'
    """

    statistic: str
    value: float
    threshold: float
    p_value: float | None
    is_drift: bool
    severity: Severity
    n_reference: int
    n_current: int
    judged: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (severity as its lowercase label)."""
        out = asdict(self)
        out["severity"] = self.severity.label
        return out
