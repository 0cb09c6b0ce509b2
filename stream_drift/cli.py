"""The ``stream-drift`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stream_drift.datasets import DataError, read_columns
from stream_drift.reference import (
    DEFAULT_EXCLUDED,
    ReferenceError,
    ReferenceProfile,
    build_reference_from_file,
)


def _width() -> int | None:
    """Full terminal width on a terminal; wide enough for the tables when piped."""
    return None if sys.stdout.isatty() else 140


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stream-drift")
def cli() -> None:
    """Streaming drift detection for ML models in production."""


@cli.group()
def reference() -> None:
    """Build, inspect and publish reference profiles."""


@reference.command("build")
@click.option("--model", required=True, help="Model name, as in the events' `model` field.")
@click.option("--version", "model_version", default="", help="Model version.")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training set: .csv, .parquet or .jsonl.",
)
@click.option(
    "--prediction",
    multiple=True,
    help="Prediction column (repeat for named outputs: series prediction.COL).",
)
@click.option("--categorical", multiple=True, help="Force a column to be categorical.")
@click.option("--numeric", multiple=True, help="Force a column to be numeric.")
@click.option(
    "--exclude",
    multiple=True,
    help=f"Column to leave out (default: {', '.join(DEFAULT_EXCLUDED)}).",
)
@click.option("--fine-bins", default=100, show_default=True, help="Quantile bins for KS.")
@click.option("--psi-bins", default=10, show_default=True, help="Coarse bins for PSI/KL/JS.")
@click.option("--top-categories", default=50, show_default=True, help="Vocabulary size.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
def reference_build(
    model: str,
    model_version: str,
    source: Path,
    prediction: tuple[str, ...],
    categorical: tuple[str, ...],
    numeric: tuple[str, ...],
    exclude: tuple[str, ...],
    fine_bins: int,
    psi_bins: int,
    top_categories: int,
    output: Path,
) -> None:
    """Build a reference profile from a training set."""
    try:
        profile = build_reference_from_file(
            source,
            model=model,
            model_version=model_version,
            prediction=prediction,
            categorical=categorical,
            numeric=numeric,
            exclude=exclude or DEFAULT_EXCLUDED,
            fine_bins=fine_bins,
            coarse_bins=psi_bins,
            top_categories=top_categories,
        )
    except (DataError, ReferenceError, ValueError) as exc:
        _fail(str(exc))
        return
    profile.save(output)
    roles = [s.role for s in profile.series.values()]
    click.echo(
        f"Wrote {output}: model {profile.model} v{profile.model_version or '-'}, "
        f"id {profile.id}, {roles.count('feature')} feature(s) + "
        f"{roles.count('prediction')} prediction output(s)"
    )


@reference.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def reference_show(path: Path) -> None:
    """Describe a reference profile."""
    from rich.console import Console
    from rich.table import Table

    try:
        profile = ReferenceProfile.load(path)
    except ReferenceError as exc:
        _fail(str(exc))
        return
    table = Table(
        title=f"{profile.model} v{profile.model_version or '-'}  {profile.id}  "
        f"(from {profile.source or '?'}, {profile.created_at})",
        title_justify="left",
    )
    for col in ("series", "role", "kind", "n", "missing", "bins (fine/coarse)", "summary"):
        table.add_column(col)
    for name, s in profile.series.items():
        b = s.binning
        if s.kind == "numeric":
            edges = b.to_dict()["coarse_edges"]
            summary = f"deciles {edges[0]:.4g} … {edges[-1]:.4g}" if edges else "single value"
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
    Console(width=_width()).print(table)


@cli.command("report")
@click.option(
    "--reference",
    "reference_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reference profile (JSON).",
)
@click.option(
    "--current",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Current data: .csv, .parquet or .jsonl (rows or stream events).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an HTML page with reference-vs-current plots.",
)
@click.option("--fail-on-drift", is_flag=True, help="Exit with status 1 when any series drifted.")
def report(
    reference_path: Path, current: Path, as_json: bool, html_path: Path | None, fail_on_drift: bool
) -> None:
    """Compare a current data set with a reference, offline, with the stream's maths."""
    from stream_drift.report import build_report, render_html, render_text

    try:
        profile = ReferenceProfile.load(reference_path)
        result = build_report(profile, read_columns(current))
    except (DataError, ReferenceError) as exc:
        _fail(str(exc))
        return
    if not result.evaluations:
        _fail(
            f"{current}: none of the reference's series ({', '.join(profile.series)}) "
            "is in the current data"
        )
    if html_path is not None:
        html_path.write_text(render_html(result), encoding="utf-8")
    if as_json:
        click.echo(result.to_json())
    else:
        from rich.console import Console

        console = Console(width=_width())
        console.print(render_text(result))
        if html_path is not None:
            console.print(f"HTML report: {html_path}")
    if fail_on_drift and result.drifted:
        sys.exit(1)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stream-drift")


if __name__ == "__main__":
    main()
