"""Offline drift report: one current data set against a reference, with the stream's maths.

The same :func:`~stream_drift.stats.evaluate.evaluate_window` the workers run judges the whole
current data set as one window, so an offline report and a live window over the same events
give the same figures.
"""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_drift.datasets import Column
from stream_drift.reference import ReferenceProfile
from stream_drift.stats.base import Statistic
from stream_drift.stats.evaluate import FeatureEvaluation, default_statistics, evaluate_window
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.result import Severity


@dataclass
class DriftReport:
    """Every series' evaluation against one reference."""

    profile: ReferenceProfile
    evaluations: dict[str, FeatureEvaluation]
    currents: dict[str, Histogram]
    absent: list[str]

    @property
    def drifted(self) -> list[str]:
        return [name for name, e in self.ordered() if e.drift]

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
    >>> from stream_drift.reference import build_reference
    >>> rng = np.random.default_rng(0)
    >>> ref = build_reference({"x": rng.normal(size=5000), "y": rng.normal(size=5000)}, model="m")
    >>> rep = build_report(ref, {"x": rng.normal(0.5, size=2000), "y": rng.normal(size=2000)})
    >>> rep.drifted
    ['x']
    """
    currents = profile.current_histograms(columns)
    references = {name: s.histogram for name, s in profile.series.items() if name in currents}
    evaluations = evaluate_window(
        references,
        currents,
        statistics if statistics is not None else default_statistics(),
        decisive=decisive,
        correction=correction,
    )
    absent = sorted(set(profile.series) - set(currents))
    return DriftReport(profile, evaluations, currents, absent)


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
    for name, e in report.ordered():
        d = report.feature_dict(e)
        style = _SEVERITY_STYLE[e.severity]
        table.add_row(
            name,
            e.kind,
            f"{e.n_reference:,}",
            f"{e.n_current:,}",
            f"{e.missing_ratio:.1%}",
            _fmt(d["psi"]),
            _fmt(d["psi_threshold"]),
            _fmt(d["kl"]),
            _fmt(d["js"]),
            _fmt(d["ks"]),
            _fmt(d["ks_p_value"]),
            _fmt(d["chi2_p_value"]),
            Text(e.severity.label if e.judged else "not judged", style=style),
            Text("DRIFT" if e.drift else "no", style=style),
        )
    drifted = report.drifted
    if drifted:
        verdict = Text(
            f"{len(drifted)} of {len(report.evaluations)} series drifted: " + ", ".join(drifted),
            style="bold red",
        )
    else:
        verdict = Text(f"No drift in {len(report.evaluations)} series.", style="green")
    parts: list[Any] = [table, verdict]
    if report.absent:
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
        badge = "DRIFT" if e.drift else "no drift"
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
        f"{len(report.drifted)} of {len(report.evaluations)} series drifted. Legend: "
        '<span style="color:#9e9e9e">■ reference</span> '
        '<span style="color:#f57c00">■ current</span></p>' + "".join(sections) + "</body></html>"
    )
