"""The ``stream-drift`` command line.

Thin: it parses the options and, inside each command, imports the module that does the work
(so that ``--help`` loads none of numpy, scipy, aiokafka, Faust ...).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from stream_drift.config import Settings


def _width() -> int | None:
    """Full terminal width on a terminal; wide enough for the tables when piped."""
    return None if sys.stdout.isatty() else 140


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _LazyHelpOption(click.Option):
    """An option whose help is written when shown: its default lives in a module too heavy to
    import for every ``--help``."""

    def __init__(self, *args: Any, help_text: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._help_text = help_text

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self._help_text()
        return super().get_help_record(ctx)


def _exclude_help() -> str:
    from stream_drift.pipeline.reference import DEFAULT_EXCLUDED

    return f"Column to leave out (default: {', '.join(DEFAULT_EXCLUDED)})."


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
@click.option("--exclude", multiple=True, cls=_LazyHelpOption, help_text=_exclude_help)
@click.option("--fine-bins", default=100, show_default=True, help="Quantile bins for KS.")
@click.option("--psi-bins", default=10, show_default=True, help="Coarse bins for PSI/KL/JS.")
@click.option("--top-categories", default=50, show_default=True, help="Vocabulary size.")
@click.option(
    "--label",
    help="Label column: record the model's performance on the reference (needs one "
    "--prediction column, or a column named prediction); never profiled.",
)
@click.option(
    "--sample-rows",
    type=click.IntRange(min=0),
    default=1000,  # pipeline.reference.DEFAULT_SAMPLE_ROWS (not imported: --help stays light)
    show_default=True,
    help="Raw feature rows to keep for the domain classifier (0: none).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the row sample.")
@click.option("--owner", default="", help="Metadata: who owns the model.")
@click.option("--intended-use", default="", help="Metadata: what the model is for.")
@click.option("--description", default="", help="Metadata: a description of the model.")
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
    label: str | None,
    sample_rows: int,
    seed: int,
    owner: str,
    intended_use: str,
    description: str,
    output: Path,
) -> None:
    """Build a reference profile from a training set.

    An empty training set is refused (exit 2); a constant, near-constant, empty or thin series
    is profiled with a warning, on stderr and in the profile, and so is a profile too large
    for a default Kafka record (1 MB).
    """
    from stream_drift.pipeline.reference import DEFAULT_EXCLUDED, ReferenceError, size_warning
    from stream_drift.tools.datasets import DataError, build_reference_from_file

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
            label=label,
            sample_rows=sample_rows,
            seed=seed,
            metadata={"owner": owner, "intended_use": intended_use, "description": description},
        )
    except (DataError, ReferenceError, ValueError) as exc:
        _fail(str(exc))
        return
    profile.save(output)
    warnings = [f"{name}: {w}" for name, ws in profile.warnings.items() for w in ws]
    too_large = size_warning(profile)
    for line in [*warnings, *([too_large] if too_large else [])]:
        click.echo(f"warning: {line}", err=True)
    roles = [s.role for s in profile.series.values()]
    perf = profile.performance
    click.echo(
        f"Wrote {output}: model {profile.model} v{profile.model_version or '-'}, "
        f"id {profile.id}, {roles.count('feature')} feature(s) + "
        f"{roles.count('prediction')} prediction output(s)"
        + (f", {len(profile.sample.rows)} sampled row(s)" if profile.sample else "")
        + (f", {perf.task} performance over {perf.n} labelled row(s)" if perf else "")
        + (f", {len(warnings)} warning(s)" if warnings else "")
    )


@reference.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def reference_show(path: Path) -> None:
    """Describe a reference profile, and its series' warnings."""
    from rich.console import Console

    from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile
    from stream_drift.tools.show import render_profile

    try:
        profile = ReferenceProfile.load(path)
    except ReferenceError as exc:
        _fail(str(exc))
        return
    console = Console(width=_width())
    for renderable in render_profile(profile):
        console.print(renderable)


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
@click.option(
    "--fail-on-drift",
    is_flag=True,
    help="Exit with status 1 when any series drifted, 3 when no series could be judged.",
)
def report(
    reference_path: Path, current: Path, as_json: bool, html_path: Path | None, fail_on_drift: bool
) -> None:
    """Compare a current data set with a reference, offline, with the stream's maths.

    A current data set with no rows, or too few values in every series, is reported as
    "Nothing judged" with the reason, never as "no drift".
    """
    from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile
    from stream_drift.tools.datasets import DataError, read_columns
    from stream_drift.tools.report import (
        EXIT_DRIFT,
        EXIT_NOTHING_JUDGED,
        build_report,
        render_html,
        render_text,
    )

    try:
        profile = ReferenceProfile.load(reference_path)
        result = build_report(profile, read_columns(current))
    except (DataError, ReferenceError) as exc:
        _fail(str(exc))
        return
    if not result.evaluations and result.current_rows:
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
        sys.exit(EXIT_DRIFT)
    if fail_on_drift and not result.any_judged:
        sys.exit(EXIT_NOTHING_JUDGED)


def _settings(config: Path | None) -> Settings:
    from stream_drift.config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        _fail(f"invalid configuration{f' in {config}' if config else ''}:\n{exc}")
        raise AssertionError("unreachable") from exc


@cli.command("worker")
@click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML settings (every key overridable by STREAM_DRIFT_* variables).",
)
@click.option("--bootstrap", help="Broker host:port (overrides kafka.bootstrap_servers).")
def worker(config: Path | None, bootstrap: str | None) -> None:
    """Run a worker: ingest (stage 1), evaluate (stage 2), alerts, /metrics."""
    from stream_drift.app.worker import run_worker
    from stream_drift.tools.embedded import EmbeddedBroker

    settings = _client_settings(config, bootstrap)
    broker = None
    if settings.kafka.embedded:
        broker = EmbeddedBroker()
        broker.start()
        click.echo(f"embedded broker at {broker.bootstrap_servers} (pid {broker.pid})", err=True)
        settings = settings.override({"kafka.bootstrap_servers": broker.bootstrap_servers})
    try:
        _check_broker(settings)
        run_worker(settings)
    finally:
        if broker is not None:
            broker.stop()


def _check_broker(settings: Settings) -> None:
    """Before a worker starts: the brokers answer (and accept the credentials) within
    ``kafka.connect_timeout_seconds``, or the command fails with one line (exit status 2)."""
    from stream_drift.app.kafka_io import check_reachable

    bootstrap = _bootstrap(settings)
    _run_kafka(
        check_reachable(
            bootstrap,
            security=_security(settings),
            timeout=settings.kafka.connect_timeout_seconds,
        ),
        bootstrap,
    )


def _bootstrap(settings: Settings) -> str:
    if settings.kafka.embedded:
        _fail("kafka.bootstrap_servers is 'embedded': give the broker's host:port instead")
    return ",".join(settings.kafka.servers)


def _security(settings: Settings) -> dict[str, Any]:
    """The TLS/SASL kwargs of every client; a TLS file that does not load is one error line."""
    from stream_drift.config import ConfigError

    try:
        return settings.kafka.client_kwargs()
    except ConfigError as exc:
        _fail(f"invalid configuration: {exc}")
        raise AssertionError("unreachable") from exc


_T = TypeVar("_T")


def _run_kafka(main: Coroutine[Any, Any, _T], bootstrap: str) -> _T:
    """Run a client command's coroutine; an unreachable broker or any Kafka error ends the
    command with one line on stderr and exit status 2, never a traceback."""
    from stream_drift.app.kafka_io import ClientCommandError, run_client

    try:
        return run_client(main, bootstrap)
    except ClientCommandError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


_config_option = click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML settings (for the broker address and topic names).",
)
_bootstrap_option = click.option(
    "--bootstrap", help="Broker host:port (overrides kafka.bootstrap_servers)."
)


def _client_settings(config: Path | None, bootstrap: str | None) -> Settings:
    from stream_drift.config import ConfigError

    settings = _settings(config)
    if bootstrap:
        try:
            settings = settings.override({"kafka.bootstrap_servers": bootstrap})
        except ConfigError as exc:
            _fail(f"--bootstrap {bootstrap!r}: {exc}")
    return settings


@reference.command("publish")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_config_option
@_bootstrap_option
def reference_publish(path: Path, config: Path | None, bootstrap: str | None) -> None:
    """Publish a reference profile to the references topic (latest per model/version wins)."""
    from stream_drift.app.kafka_io import publish_reference
    from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile

    settings = _client_settings(config, bootstrap)
    try:
        profile = ReferenceProfile.load(path)
    except ReferenceError as exc:
        _fail(str(exc))
        return
    bootstrap = _bootstrap(settings)
    _run_kafka(
        publish_reference(
            bootstrap,
            settings.topics.references,
            profile,
            partitions=settings.topics.partitions.references,
            topic_configs=settings.topics.topic_configs()[settings.topics.references],
            security=_security(settings),
            connect_timeout=settings.kafka.connect_timeout_seconds,
        ),
        bootstrap,
    )
    click.echo(f"Published {profile.id} for {profile.key} to {settings.topics.references}")


@reference.command("history")
@click.option("--model", required=True, help="Model whose published profiles to list.")
@click.option("--version", "model_version", default=None, help="Only this model version.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per profile.")
@_config_option
@_bootstrap_option
def reference_history(
    model: str,
    model_version: str | None,
    as_json: bool,
    config: Path | None,
    bootstrap: str | None,
) -> None:
    """List every profile published for a model, oldest first, and which one is current.

    Reads the references topic from the beginning (no consumer group). One line per
    published profile: version, reference id, rows and series, publish time (the record's
    timestamp, RFC 3339) and ``current`` for the profile workers judge that version against
    (the version's latest record).
    """
    import json

    from stream_drift.app.kafka_io import read_reference_history

    settings = _client_settings(config, bootstrap)
    address = _bootstrap(settings)
    found = _run_kafka(
        read_reference_history(
            address,
            settings.topics.references,
            model=model,
            model_version=model_version,
            security=_security(settings),
            connect_timeout=settings.kafka.connect_timeout_seconds,
        ),
        address,
    )
    for r in found:
        if as_json:
            click.echo(json.dumps(r.to_dict(), sort_keys=False))
        else:
            click.echo(
                f"{r.model} v{r.model_version or '-'}  {r.reference_id}  "
                f"{r.n_rows} rows  {r.n_series} series  published {r.published_at}"
                + ("  current" if r.current else "")
            )
    if not found and not as_json:
        which = f"{model} v{model_version}" if model_version is not None else model
        click.echo(f"no profile published for {which} on {settings.topics.references}", err=True)


@cli.group()
def topics() -> None:
    """Kafka topics of the app."""


@topics.command("create")
@_config_option
@_bootstrap_option
def topics_create(config: Path | None, bootstrap: str | None) -> None:
    """Create every topic with its partition count (``topics.partitions.*``); idempotent.

    What a worker does at start-up unless ``topics.create: false``: run it once from a
    deployment's init step, or where workers have no permission to create topics.
    """
    from stream_drift.app.kafka_io import ClientCommandError
    from stream_drift.app.worker import create_topics_once

    settings = _client_settings(config, bootstrap)
    _check_broker(settings)
    try:
        counts = create_topics_once(settings)
    except ClientCommandError as exc:
        _fail(str(exc))
        return
    click.echo(
        "Topics ready: "
        + ", ".join(f"{name} ({n} partition{'s' * (n != 1)})" for name, n in sorted(counts.items()))
    )


@cli.command("produce")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Events (.jsonl) or rows (.csv, .parquet) to replay.",
)
@click.option("--model", help="Model of table rows (and of JSON lines without one).")
@click.option("--version", "model_version", default="", help="Model version of table rows.")
@click.option("--prediction", multiple=True, help="Prediction column(s) of table rows.")
@click.option("--ts-column", help="Event-time column of table rows (default: send time).")
@click.option("--rate", default=0.0, show_default=True, help="Events per second; 0 = max.")
@click.option("--topic", help="Topic (default: topics.events).")
@_config_option
@_bootstrap_option
def produce(
    source: Path,
    model: str | None,
    model_version: str,
    prediction: tuple[str, ...],
    ts_column: str | None,
    rate: float,
    topic: str | None,
    config: Path | None,
    bootstrap: str | None,
) -> None:
    """Replay a data set into the events topic, one event per message."""
    from stream_drift.app.kafka_io import produce as produce_values
    from stream_drift.tools.datasets import DataError
    from stream_drift.tools.produce import load_events

    settings = _client_settings(config, bootstrap)
    try:
        values = load_events(
            source,
            model=model,
            model_version=model_version,
            prediction=prediction,
            ts_column=ts_column,
        )
    except (DataError, ValueError) as exc:
        _fail(str(exc))
        return
    target = topic or settings.topics.events
    bootstrap = _bootstrap(settings)
    n = _run_kafka(
        produce_values(
            bootstrap,
            target,
            values,
            rate=rate,
            security=_security(settings),
            connect_timeout=settings.kafka.connect_timeout_seconds,
        ),
        bootstrap,
    )
    click.echo(f"Sent {n:,} events to {target}")


@cli.command("alerts")
@click.option("--json", "as_json", is_flag=True, help="Print each alert as raw JSON.")
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the oldest alert (with --exec/--webhook: where a new group starts).",
)
@click.option(
    "--idle-exit", type=float, default=None, help="Exit after this many seconds without alerts."
)
@click.option(
    "--exec",
    "exec_command",
    metavar="CMD",
    help="Run CMD (a shell command line) once per triggering alert: its JSON on stdin, "
    "its fields in STREAM_DRIFT_ALERT_* variables.",
)
@click.option("--webhook", metavar="URL", help="POST each triggering alert's JSON to URL.")
@click.option(
    "--exec-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds before a command is killed (its process group) and counted as failed.",
)
@click.option(
    "--webhook-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the webhook's answer.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries of a failed command/webhook, after 1, 2, 4 ... s (at most 60 s).",
)
@click.option(
    "--severity",
    "min_severity",
    type=click.Choice(["warning", "critical"]),
    default="warning",
    show_default=True,
    help="Lowest severity that triggers.",
)
@click.option("--model", "models", multiple=True, help="Only alerts of this model (repeatable).")
@click.option(
    "--on",
    "statuses",
    multiple=True,
    type=click.Choice(["firing", "escalated", "resolved"]),
    help="Statuses that trigger (repeatable; default: firing and escalated).",
)
@click.option("--group", help="Consumer group of --exec/--webhook (default: <app_id>-alerts-exec).")
@_config_option
@_bootstrap_option
def alerts(
    as_json: bool,
    from_beginning: bool,
    idle_exit: float | None,
    exec_command: str | None,
    webhook: str | None,
    exec_timeout: float,
    webhook_timeout: float,
    retries: int,
    min_severity: str,
    models: tuple[str, ...],
    statuses: tuple[str, ...],
    group: str | None,
    config: Path | None,
    bootstrap: str | None,
) -> None:
    """Follow the alerts topic and print each alert as one readable line.

    With --exec and/or --webhook, act on each firing or escalated alert instead: once per
    (alert_id, status), committing the group's offset only after the action succeeded. When
    an action still fails after its retries the offset is not committed and the command exits
    with status 1 (the next start tries that alert again).
    """
    acting = exec_command is not None or webhook is not None
    if not acting and (models or statuses or group or min_severity != "warning"):
        _fail("--severity, --model, --on and --group select alerts for --exec/--webhook")
    settings = _client_settings(config, bootstrap)
    address = _bootstrap(settings)
    security = _security(settings)

    from stream_drift.tools import watch

    if acting:
        from stream_drift.tools.trigger import TRIGGER_STATUSES, AlertFilter

        options = watch.TriggerOptions(
            command=exec_command,
            webhook=webhook,
            exec_timeout=exec_timeout,
            webhook_timeout=webhook_timeout,
            retries=retries,
            selection=AlertFilter(
                statuses=frozenset(statuses) or TRIGGER_STATUSES,
                min_severity=min_severity,
                models=frozenset(models),
            ),
        )
        code = 0
        with contextlib.suppress(KeyboardInterrupt):
            code = _run_kafka(
                watch.act_on_alerts(
                    settings,
                    address,
                    security,
                    options,
                    group=group or f"{settings.app_id}-alerts-exec",
                    from_beginning=from_beginning,
                    idle_exit=idle_exit,
                ),
                address,
            )
        sys.exit(code)

    with contextlib.suppress(KeyboardInterrupt):
        _run_kafka(
            watch.print_alerts(
                address,
                settings.topics.alerts,
                as_json=as_json,
                from_beginning=from_beginning,
                idle_exit=idle_exit,
                security=security,
                connect_timeout=settings.kafka.connect_timeout_seconds,
            ),
            address,
        )


def _input_file(flag: str, help_text: str) -> Callable[[Callable[..., Any]], Any]:
    """An optional input file of ``model-card``: ``--results`` is the parameter
    ``results_path``."""
    return click.option(
        flag,
        f"{flag.lstrip('-')}_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help=help_text,
    )


@cli.command("model-card")
@click.option("--model", required=True, help="Model name.")
@click.option(
    "--version",
    "model_version",
    default=None,
    help="Model version (default: the reference's, or the latest published one).",
)
@_input_file("--reference", "Reference profile (default: the current one on the references topic).")
@_input_file("--results", "drift.results records as JSON lines (default: the results topic).")
@_input_file("--alerts", "drift.alerts records as JSON lines (default: the alerts topic).")
@click.option(
    "--since",
    default=None,
    help="Only results and alerts evaluated since: a duration back from now (12h, 7d, 2w) "
    "or an RFC 3339 time (default: all).",
)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="At most the last N results and the last N alerts of the model.",
)
@click.option("--offline", is_flag=True, help="Read no topic: use the files given only.")
@click.option("--html", "as_html", is_flag=True, help="A self-contained HTML page, not Markdown.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the card to this file (default: stdout).",
)
@_config_option
@_bootstrap_option
def model_card(
    model: str,
    model_version: str | None,
    reference_path: Path | None,
    results_path: Path | None,
    alerts_path: Path | None,
    since: str | None,
    last: int,
    offline: bool,
    as_html: bool,
    output: Path | None,
    config: Path | None,
    bootstrap: str | None,
) -> None:
    """Write a model card (Markdown, or HTML with --html) from what the system knows.

    The reference profile (data summary, reference id and performance, owner, intended use),
    realised performance per window, drift and multivariate drift, label join outcomes and
    the alert history. Each input is a file when given, else read from its topic (records
    of the model since --since, the last --last of them); --offline reads no topic.
    """
    from stream_drift.tools.model_card import (
        CardError,
        Selection,
        build_card,
        card_inputs_from_files,
        parse_since,
        read_card_inputs,
        render_html,
        render_markdown,
    )

    try:
        inputs = card_inputs_from_files(
            Selection(model, model_version, parse_since(since) if since else None, last),
            reference=reference_path,
            results=results_path,
            alerts=alerts_path,
        )
    except CardError as exc:
        _fail(str(exc))
        return
    if not offline and None in (reference_path, results_path, alerts_path):
        settings = _client_settings(config, bootstrap)
        address = _bootstrap(settings)
        inputs = _run_kafka(
            read_card_inputs(
                inputs,
                address,
                references_topic=settings.topics.references,
                results_topic=settings.topics.results,
                alerts_topic=settings.topics.alerts,
                security=_security(settings),
                connect_timeout=settings.kafka.connect_timeout_seconds,
            ),
            address,
        )
    card = build_card(inputs)
    text = render_html(card) if as_html else render_markdown(card)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {output}: {card.title}", err=True)


@cli.command("demo")
@click.option(
    "--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C)."
)
@click.option("--json", "as_json", is_flag=True, help="Print only the summary, as JSON.")
@click.option(
    "--inject-after",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds of normal traffic before the drift is injected.",
)
@click.option(
    "--rate", type=float, default=200.0, show_default=True, help="Events per second per model."
)
@_bootstrap_option
def demo(
    duration: float | None, as_json: bool, inject_after: float, rate: float, bootstrap: str | None
) -> None:
    """Embedded broker, three synthetic models, a worker and a drifting stream, live."""
    import asyncio
    import json

    from stream_drift.tools.demo import render_summary, run_demo

    echo = (lambda _msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    live = not as_json and sys.stdout.isatty()
    try:
        summary = asyncio.run(
            run_demo(
                duration=duration,
                inject_after=inject_after,
                rate=rate,
                live=live,
                bootstrap=bootstrap,
                echo=echo,
            )
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        from rich.console import Console

        Console(width=_width()).print(render_summary(summary))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stream-drift")


if __name__ == "__main__":
    main()
