"""What ``stream-drift reference show`` prints: a profile's series as one table, then its
warnings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import RenderableType

    from stream_drift.pipeline.reference import ReferenceProfile

_COLUMNS = ("series", "role", "kind", "n", "missing", "bins (fine/coarse)", "summary")


def render_profile(profile: ReferenceProfile) -> Iterator[RenderableType]:
    """The table of a profile's series, then one yellow line per warning.

    Parameters
    ----------
    profile
        The reference profile.

    Yields
    ------
    rich.console.RenderableType
        What to print, in order.

    Examples
    --------
    >>> from stream_drift.pipeline.reference import build_reference
    >>> [table] = render_profile(build_reference({"a": [1.0, 2.0, 3.0] * 50}, model="m"))
    >>> [c.header for c in table.columns][:3]
    ['series', 'role', 'kind']
    """
    table = Table(
        title=f"{profile.model} v{profile.model_version or '-'}  {profile.id}  "
        f"(from {profile.source or '?'}, {profile.created_at})",
        title_justify="left",
    )
    for col in _COLUMNS:
        table.add_column(col)
    for name, s in profile.series.items():
        b = s.binning
        if s.kind == "numeric":
            edges = b.to_dict()["coarse_edges"]
            labels = b.coarse_labels()
            summary = (
                " ".join(labels)
                if len(labels) <= 3
                else f"deciles {edges[0]:.4g} … {edges[-1]:.4g}"
            )
        else:
            cats = list(b.to_dict()["categories"])
            summary = ", ".join(cats[:5]) + (" …" if len(cats) > 5 else "")
        table.add_row(
            name,
            s.role,
            s.kind,
            f"{s.histogram.n:,}",
            f"{s.histogram.missing_ratio:.1%}",
            f"{b.n_bins}/{b.n_coarse}",
            summary,
        )
    yield table
    for name, ws in profile.warnings.items():
        for w in ws:
            yield Text(f"warning: {name}: {w}", style="yellow")
