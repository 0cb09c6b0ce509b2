"""Offline drift report: one current data set against a reference, with the stream's maths.

The same :func:`~stream_drift.stats.evaluate.evaluate_window` the workers run judges the whole
current data set as one window, so an offline report and a live window over the same events
give the same figures.

A report that judged nothing (every window below ``min_samples``, or no rows at all) says so,
with the reason, rather than "no drift"; the command line exits :data:`EXIT_NOTHING_JUDGED`
then under ``--fail-on-drift``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_drift.pipeline.columns import Column, n_rows
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.stats.base import Statistic
from stream_drift.stats.evaluate import FeatureEvaluation, default_statistics, evaluate_window
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.result import Severity

EXIT_DRIFT = 1
"""Exit status of ``stream-drift report --fail-on-drift`` when a series drifted."""

EXIT_NOTHING_JUDGED = 3
"""Exit status of ``stream-drift report --fail-on-drift`` when no series could be judged."""


@dataclass
class DriftReport:
    """Every series' evaluation against one reference.

    Parameters
    ----------
    profile
        The reference.
    evaluations
        Evaluation of every series found in the current data, by name.
    currents
        Current histograms, by series name.
    absent
        Reference series not in the current data.
    current_rows
        Rows in the current data set; ``None`` when unknown.
    min_samples
        Non-missing values a side needs for a series to be judged (the smallest of the
        statistics' ``min_samples``), to explain the series that were not.
    """

    profile: ReferenceProfile
    evaluations: dict[str, FeatureEvaluation]
    currents: dict[str, Histogram]
    absent: list[str]
    current_rows: int | None = None
    min_samples: int = 100

    @property
    def drifted(self) -> list[str]:
        return [name for name, e in self.ordered() if e.drift]

    @property
    def judged_series(self) -> list[str]:
        """Series that had enough values on both sides to be judged, by name."""
        return sorted(name for name, e in self.evaluations.items() if e.judged)

    @property
    def any_judged(self) -> bool:
        """Whether at least one series was judged; without one, "no drift" means nothing."""
        return any(e.judged for e in self.evaluations.values())

    @property
    def not_judged(self) -> dict[str, str]:
        """Why each series found in the current data was not judged, by name."""
        out = {}
        for name, e in sorted(self.evaluations.items()):
            if e.judged:
                continue
            reasons = []
            if e.n_current == 0:
                missing = self.currents[name].missing
                reasons.append(
                    "no current values" + (f" (all {missing} missing)" if missing else "")
                )
            elif e.n_current < self.min_samples:
                reasons.append(f"only {e.n_current} current values, fewer than {self.min_samples}")
            if e.n_reference < self.min_samples:
                reasons.append(
                    f"only {e.n_reference} reference values, fewer than {self.min_samples}"
                )
            out[name] = "; ".join(reasons) or "not judged"
        return out

    @property
    def not_judged_reason(self) -> str | None:
        """Why nothing at all was judged, in a few words; ``None`` when something was."""
        if self.any_judged:
            return None
        if self.current_rows == 0:
            return "the current data has no rows"
        if not self.evaluations:
            return "none of the reference's series is in the current data"
        return "no series has enough values"

    def ordered(self) -> list[tuple[str, FeatureEvaluation]]:
        """Drifted series first, most severe and largest PSI first, then by name."""

        def rank(item: tuple[str, FeatureEvaluation]) -> tuple[int, int, float, str]:
            name, e = item
            psi = e.results.get("psi")
            return (-int(e.drift), -int(e.severity), -(psi.value if psi else 0.0), name)

        return sorted(self.evaluations.items(), key=rank)

    def feature_dict(self, e: FeatureEvaluation) -> dict[str, Any]:
        out = e.to_dict()
        del out["results"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.profile.model,
            "model_version": self.profile.model_version,
            "reference_id": self.profile.id,
            "drifted": self.drifted,
            "absent": self.absent,
            "judged": self.any_judged,
            "n_series": len(self.profile.series),
            "n_judged": len(self.judged_series),
            "not_judged": self.not_judged,
            "not_judged_reason": self.not_judged_reason,
            "current_rows": self.current_rows,
            "features": {name: self.feature_dict(e) for name, e in self.ordered()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def build_report(
    profile: ReferenceProfile,
    columns: Mapping[str, Column],
    *,
    statistics: Sequence[Statistic] | None = None,
    decisive: Collection[str] = ("psi",),
    correction: str = "bh",
) -> DriftReport:
    """Judge a current data set (by column) against ``profile``.

    Examples
    --------
    >>> import numpy as np
    >>> from stream_drift.pipeline.reference import build_reference
    >>> rng = np.random.default_rng(0)
    >>> ref = build_reference({"x": rng.normal(size=5000), "y": rng.normal(size=5000)}, model="m")
    >>> rep = build_report(ref, {"x": rng.normal(0.5, size=2000), "y": rng.normal(size=2000)})
    >>> rep.drifted
    ['x']

    Too few values, or none, and nothing is judged:

    >>> rep = build_report(ref, {"x": rng.normal(size=20), "y": []})
    >>> rep.any_judged, rep.not_judged_reason, rep.not_judged["x"]
    (False, 'no series has enough values', 'only 20 current values, fewer than 100')
    """
    currents = profile.current_histograms(columns)
    references = {name: s.histogram for name, s in profile.series.items() if name in currents}
    stats = list(statistics) if statistics is not None else default_statistics()
    evaluations = evaluate_window(
        references, currents, stats, decisive=decisive, correction=correction
    )
    absent = sorted(set(profile.series) - set(currents))
    min_samples = min((s.min_samples for s in stats), default=1)
    return DriftReport(profile, evaluations, currents, absent, n_rows(columns), min_samples)


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if x != 0 and abs(x) < 10 ** (-digits):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


_SEVERITY_STYLE = {Severity.OK: "green", Severity.WARNING: "yellow", Severity.CRITICAL: "bold red"}


def render_text(report: DriftReport) -> Any:
    """A rich renderable: one row per series, drifted first, and a one-line verdict."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    p = report.profile
    title = f"{p.model} v{p.model_version or '-'} vs reference {p.id}"
    table = Table(title=title, title_justify="left")
    for col in (
        "series",
        "kind",
        "n ref",
        "n cur",
        "missing",
        "PSI",
        "PSI thr",
        "KL",
        "JS",
        "KS",
        "KS p",
        "χ² p",
        "severity",
        "drift",
    ):
        table.add_column(col, justify="left" if col in ("series", "kind", "severity") else "right")
    stat_keys = ("psi", "psi_threshold", "kl", "js", "ks", "ks_p_value", "chi2_p_value")
    for name, e in report.ordered():
        d = report.feature_dict(e)
        style = _SEVERITY_STYLE[e.severity]
        # With no values on a side there is no statistic to show, only a placeholder 0.
        empty = e.n_current == 0 or e.n_reference == 0
        table.add_row(
            name,
            e.kind,
            f"{e.n_reference:,}",
            f"{e.n_current:,}",
            f"{e.missing_ratio:.1%}",
            *(_fmt(None if empty else d[k]) for k in stat_keys),
            Text(e.severity.label if e.judged else "not judged", style=style),
            Text("DRIFT" if e.drift else "no", style=style),
        )
    drifted = report.drifted
    not_judged = report.not_judged
    n_judged = len(report.judged_series)
    parts: list[Any] = [table] if report.evaluations else []
    if not report.any_judged:
        parts.append(Text(f"Nothing judged: {report.not_judged_reason}.", style="bold yellow"))
        parts += [Text(f"  {name}: {why}", style="yellow") for name, why in not_judged.items()]
        not_judged = {}
    elif drifted:
        parts.append(
            Text(
                f"{len(drifted)} of {len(report.evaluations)} series drifted: "
                + ", ".join(drifted),
                style="bold red",
            )
        )
    elif not_judged:
        parts.append(
            Text(f"No drift in the {n_judged} judged series of {len(report.evaluations)}.")
        )
    else:
        parts.append(Text(f"No drift in {len(report.evaluations)} series.", style="green"))
    if not_judged:
        line = "; ".join(f"{name}: {why}" for name, why in not_judged.items())
        parts.append(Text(f"Not judged: {line}", style="yellow"))
    if report.absent and report.current_rows != 0:  # with no rows, "no rows" says it all
        parts.append(Text("Not in the current data: " + ", ".join(report.absent), style="yellow"))
    return Group(*parts)


def _svg_bars(labels: list[str], ref: list[float], cur: list[float]) -> str:
    """Grouped bars (reference grey, current orange) of bin shares, as inline SVG."""
    width, height, pad, label_h = 640, 220, 30, 60
    n = max(len(labels), 1)
    top = max([*ref, *cur, 1e-9])
    slot = (width - 2 * pad) / n
    bar = slot * 0.38
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + label_h}" '
        f'role="img"><line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" '
        'stroke="#444"/>'
    ]
    for i, (lab, r, c) in enumerate(zip(labels, ref, cur, strict=True)):
        x = pad + i * slot + slot * 0.1
        for j, (v, colour) in enumerate(((r, "#9e9e9e"), (c, "#f57c00"))):
            h = (height - 20) * v / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(lab)}: '
                f"{'reference' if j == 0 else 'current'} {v:.1%}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar:.1f}" y="{height + 12}" font-size="9" text-anchor="end" '
            f'transform="rotate(-40 {x + bar:.1f} {height + 12})">{html.escape(lab[:24])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: DriftReport) -> str:
    """A self-contained HTML page: reference-vs-current bars per series, drifted first."""
    p = report.profile
    sections = []
    for name, e in report.ordered():
        ref = p.series[name].histogram.coarse_counts().astype(np.float64)
        cur = report.currents[name].coarse_counts().astype(np.float64)
        ref_share = (ref / ref.sum()).tolist() if ref.sum() else [0.0] * ref.size
        cur_share = (cur / cur.sum()).tolist() if cur.sum() else [0.0] * cur.size
        d = report.feature_dict(e)
        figures = ", ".join(
            f"{k.upper()} {_fmt(d[k])}"
            for k in ("psi", "kl", "js", "ks", "chi2")
            if d[k] is not None
        )
        badge = "DRIFT" if e.drift else "no drift" if e.judged else "not judged"
        sections.append(
            f'<section class="{e.severity.label}"><h2>{html.escape(name)} '
            f'<span class="badge">{badge} · {e.severity.label}</span></h2>'
            f"<p>{e.kind}; n reference {e.n_reference:,}, n current {e.n_current:,}, "
            f"missing {e.missing_ratio:.1%}; {figures}</p>"
            f"{_svg_bars(p.series[name].binning.coarse_labels(), ref_share, cur_share)}</section>"
        )
    title = html.escape(f"Drift report: {p.model} v{p.model_version or '-'}")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>"
        "body{font-family:sans-serif;max-width:720px;margin:2em auto}"
        "section{border-left:6px solid #4caf50;padding:0 1em;margin:1.5em 0}"
        "section.warning{border-color:#fbc02d}section.critical{border-color:#d32f2f}"
        ".badge{font-size:.6em;background:#eee;padding:2px 6px;border-radius:4px}"
        "</style></head><body>"
        f"<h1>{title}</h1><p>Reference {html.escape(p.id)}. "
        + (
            f"Nothing judged: {html.escape(report.not_judged_reason or '')}. "
            if not report.any_judged
            else f"{len(report.drifted)} of {len(report.evaluations)} series drifted. "
        )
        + "Legend: "
        '<span style="color:#9e9e9e">■ reference</span> '
        '<span style="color:#f57c00">■ current</span></p>' + "".join(sections) + "</body></html>"
    )
