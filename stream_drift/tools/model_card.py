"""The work of ``stream-drift model-card``: a model card from what the system knows.

A card gathers, for one model (and version): its reference profile (data summary, reference
id, performance on the reference, owner and intended use), and what the workers wrote since
about it: realised performance per window, drift and the domain classifier's verdicts, label
join outcomes (``drift.results``) and the alert history (``drift.alerts``). Each input comes
from a file (offline use, tests) or from its topic, read without a consumer group and bounded
(records since a time, at most the last N of the model).

The card is built once as a small document (:class:`Card`: headings, paragraphs, tables of
plain text) and rendered as Markdown or as a self-contained HTML page. Every value from data
(model, feature and category names, alert summaries ...) is escaped by the renderer, never
written raw: a hostile name cannot inject Markdown or HTML.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stream_drift.pipeline.alert_text import format_timestamp, parse_timestamp
from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile, SeriesProfile
from stream_drift.stats.binning import CategoricalBinning, NumericBinning

DEFAULT_LAST = 500
"""Records of the model kept per input (results, alerts) unless ``--last`` says otherwise."""

TABLE_ROWS = 30
"""Most rows of a per-window or per-alert table; older ones are counted, not listed."""

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Quantiles of a numeric series shown on the card (read from the fine reference grid)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SEVERITY_RANK = {"none": 0, "warning": 1, "critical": 2}


class CardError(ValueError):
    """An input of the card that cannot be read, with the reason."""


def parse_since(text: str, *, now: float | None = None) -> float:
    """Epoch seconds of ``--since``: a duration back from now (``90m``, ``12h``, ``7d``,
    ``2w``) or an RFC 3339 time.

    Examples
    --------
    >>> parse_since("2h", now=10_000.0)
    2800.0
    >>> parse_since("2025-11-27T10:00:00Z")
    1764237600.0
    """
    m = _DURATION.match(text)
    if m:
        now = time.time() if now is None else now
        return now - float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    ts = parse_timestamp(text.strip())
    if ts is None:
        raise CardError(f"--since {text!r}: expected a duration (90m, 12h, 7d, 2w) or RFC 3339")
    return ts


def record_time(obj: Mapping[str, Any]) -> float | None:
    """When a result or an alert was written: its ``evaluated_at`` (epoch seconds)."""
    return parse_timestamp(obj.get("evaluated_at"))


@dataclass(frozen=True)
class Selection:
    """Which records of the results and alerts a card uses.

    Parameters
    ----------
    model
        The model.
    model_version
        Only this version (``None``: all versions).
    since
        Only records evaluated at or after (epoch seconds; ``None``: all).
    last
        At most the last this many records of the model per input.
    """

    model: str
    model_version: str | None = None
    since: float | None = None
    last: int = DEFAULT_LAST

    def matches(self, obj: Any) -> bool:
        """Whether a decoded record belongs on the card."""
        if not isinstance(obj, dict) or obj.get("model") != self.model:
            return False
        if self.model_version is not None and str(obj.get("model_version", "")) != str(
            self.model_version
        ):
            return False
        if self.since is not None:
            ts = record_time(obj)
            return ts is None or ts >= self.since
        return True


def read_jsonl(path: str | Path, selection: Selection) -> list[dict[str, Any]]:
    """The selected records of a JSON-lines file (``drift.results`` or ``drift.alerts`` as
    written to a file), in file order, the last ``selection.last`` of them.

    Raises
    ------
    CardError
        When the file is missing or a line is not a JSON object.
    """
    from stream_drift.tools.datasets import DataError, json_objects

    kept: deque[dict[str, Any]] = deque(maxlen=selection.last)
    try:
        kept.extend(obj for obj in json_objects(Path(path)) if selection.matches(obj))
    except DataError as exc:
        raise CardError(str(exc)) from exc
    return list(kept)


@dataclass
class CardInputs:
    """Everything a card is built from, and where each part came from."""

    selection: Selection
    reference: ReferenceProfile | None = None
    reference_origin: str = ""
    published_at: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    results_origin: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alerts_origin: str = ""


def card_inputs_from_files(
    selection: Selection,
    *,
    reference: str | Path | None = None,
    results: str | Path | None = None,
    alerts: str | Path | None = None,
) -> CardInputs:
    """The inputs given as files; the others stay empty (for :func:`read_card_inputs`).

    Without a version in ``selection``, a reference file's version selects the results and
    alerts.

    Raises
    ------
    CardError
        When a file does not load, or the reference is of another model.
    """
    inputs = CardInputs(selection)
    if reference is not None:
        try:
            profile = ReferenceProfile.load(reference)
        except ReferenceError as exc:
            raise CardError(str(exc)) from exc
        if profile.model != selection.model:
            raise CardError(
                f"{reference} is a reference of model {profile.model!r}, not {selection.model!r}"
            )
        if selection.model_version is None:
            inputs.selection = replace(selection, model_version=profile.model_version)
        inputs.reference, inputs.reference_origin = profile, str(reference)
    if results is not None:
        inputs.results, inputs.results_origin = read_jsonl(results, inputs.selection), str(results)
    if alerts is not None:
        inputs.alerts, inputs.alerts_origin = read_jsonl(alerts, inputs.selection), str(alerts)
    return inputs


# --------------------------------------------------------------------------- Kafka


def _read_order(pair: tuple[Any, dict[str, Any]]) -> tuple[float, int, int, int]:
    """Records of several partitions in time order: by the record's own ``evaluated_at``
    (records sent in one batch share a Kafka timestamp, and the partitions are read one after
    the other), else its Kafka timestamp; then timestamp, partition and offset."""
    record, obj = pair
    ts = record_time(obj)
    return (
        record.timestamp / 1000 if ts is None else ts,
        record.timestamp,
        record.partition,
        record.offset,
    )


async def read_topic_tail(
    bootstrap: str,
    topic: str,
    *,
    keep: Callable[[Any], bool],
    since: float | None = None,
    last: int | None = None,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = 10.0,
    idle_timeout: float = 1.0,
    max_seconds: float = 60.0,
) -> list[tuple[Any, dict[str, Any]]]:
    """The JSON records of a topic that ``keep`` accepts, with their Kafka records, oldest
    first (:func:`_read_order`); the last ``last`` of them (the last ``last`` of each
    partition are kept while reading, so memory stays bounded).

    Reads every partition without a consumer group, from the first record at or after
    ``since`` (``offsets_for_times``; from the beginning when the broker cannot answer)
    until each partition's position reaches its fetch high-water mark, nothing arrived for
    ``idle_timeout`` seconds, or ``max_seconds`` passed (Tansu's end offsets are too low to
    decide "read to the end", KAFKA-LOCAL.md). Records that are not JSON objects are skipped.
    A topic that does not exist has no records.
    """
    from aiokafka.errors import KafkaError

    from stream_drift.app.kafka_io import caught_up, open_history, read_records

    consumer = await open_history(
        bootstrap, topic, security=security, connect_timeout=connect_timeout
    )
    if consumer is None:
        return []
    partitions = sorted(consumer.assignment())
    kept: dict[int, deque[tuple[Any, dict[str, Any]]]] = {
        tp.partition: deque(maxlen=last) for tp in partitions
    }
    try:
        if since is not None and partitions:
            try:
                found = await consumer.offsets_for_times(
                    {tp: int(since * 1000) for tp in partitions}
                )
            except (KafkaError, NotImplementedError):
                found = {}  # no timestamp index: read from the beginning, filter by time
            for tp, at in found.items():
                if at is None:  # nothing that recent
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)

        records = read_records(
            consumer,
            idle_timeout=idle_timeout,
            max_seconds=max_seconds,
            caught_up=caught_up(consumer),
        )
        async for record in records:
            try:
                obj = json.loads(record.value or b"")
            except ValueError:
                continue
            if isinstance(obj, dict) and keep(obj):
                kept[record.partition].append((record, obj))
    finally:
        await consumer.stop()
    merged = sorted((pair for part in kept.values() for pair in part), key=_read_order)
    return merged[-last:] if last is not None else merged


async def read_card_inputs(
    inputs: CardInputs,
    bootstrap: str,
    *,
    references_topic: str,
    results_topic: str,
    alerts_topic: str,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = 10.0,
) -> CardInputs:
    """Fill the parts of ``inputs`` not given as files from their topics.

    The reference is the version's current profile on ``references_topic`` (the one workers
    judge against, :func:`stream_drift.pipeline.registry.reference_history`); without a
    version, the current profile of the most recently published version, whose version then
    selects the results and alerts.
    """
    from stream_drift.pipeline.registry import PublishedReference, reference_history

    sel = inputs.selection
    kw: dict[str, Any] = {"security": security, "connect_timeout": connect_timeout}
    if inputs.reference is None:
        found = await read_topic_tail(
            bootstrap,
            references_topic,
            keep=lambda obj: (
                obj.get("model") == sel.model
                and (
                    sel.model_version is None or str(obj.get("model_version")) == sel.model_version
                )
            ),
            **kw,
        )
        profiles: dict[tuple[int, int], ReferenceProfile] = {}
        published = []
        for record, obj in found:
            try:
                profile = ReferenceProfile.from_dict(obj)
            except ReferenceError:
                continue
            profiles[(record.partition, record.offset)] = profile
            key = record.key.decode("utf-8", "replace") if record.key else ""
            published.append(
                PublishedReference.of(
                    profile,
                    timestamp_ms=record.timestamp,
                    partition=record.partition,
                    offset=record.offset,
                    key=key,
                )
            )
        current = [r for r in reference_history(published) if r.current]
        if current:
            chosen = max(current, key=lambda r: (r.published_at_ms, r.partition, r.offset))
            inputs.reference = profiles[(chosen.partition, chosen.offset)]
            inputs.reference_origin = (
                f"{references_topic} (partition {chosen.partition}, offset {chosen.offset})"
            )
            inputs.published_at = chosen.published_at
            if sel.model_version is None:
                sel = replace(sel, model_version=chosen.model_version)
                inputs.selection = sel
                inputs.results = [r for r in inputs.results if sel.matches(r)]
                inputs.alerts = [a for a in inputs.alerts if sel.matches(a)]
        else:
            inputs.reference_origin = f"{references_topic}: none published"
    bounded = f"since {format_timestamp(sel.since)}, " if sel.since is not None else ""
    for part, topic in (("results", results_topic), ("alerts", alerts_topic)):
        if getattr(inputs, f"{part}_origin"):
            continue  # given as a file
        found = await read_topic_tail(
            bootstrap, topic, keep=sel.matches, since=sel.since, last=sel.last, **kw
        )
        setattr(inputs, part, [obj for _, obj in found])
        setattr(inputs, f"{part}_origin", f"{topic} ({bounded}last {sel.last} of the model)")
    return inputs


# --------------------------------------------------------------------------- the document


@dataclass
class Table:
    """A table of plain text cells (escaped by the renderers)."""

    headers: list[str]
    rows: list[list[str]]


Block = tuple[str, str] | Table
"""``("h2", text)``, ``("p", text)``, ``("li", text)`` or a :class:`Table`."""


@dataclass
class Card:
    """A model card as a document: a title and blocks, all plain text."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def li(self, text: str) -> None:
        self.blocks.append(("li", text))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.blocks.append(Table(list(headers), [[str(c) for c in row] for row in rows]))


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#&!])")


def md_escape(text: str) -> str:
    r"""Plain text as Markdown that renders as that text: punctuation that Markdown or HTML
    would act on is backslash-escaped, line breaks become spaces.

    Examples
    --------
    >>> md_escape("<img src=x onerror=alert(1)> | *x*")
    '\\<img src=x onerror=alert(1)\\> \\| \\*x\\*'
    """
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def render_markdown(card: Card) -> str:
    """The card as GitHub-flavoured Markdown."""
    out = [f"# {md_escape(card.title)}", ""]
    for block in card.blocks:
        if out[-1].startswith("- ") and (isinstance(block, Table) or block[0] != "li"):
            out.append("")  # a list ends with a blank line, or what follows joins its last item
        if isinstance(block, Table):
            out.append("| " + " | ".join(md_escape(h) for h in block.headers) + " |")
            out.append("|" + "---|" * len(block.headers))
            out.extend("| " + " | ".join(md_escape(c) for c in row) + " |" for row in block.rows)
            out.append("")
            continue
        kind, text = block
        if kind == "h2":
            out.extend([f"## {md_escape(text)}", ""])
        elif kind == "li":
            out.append(f"- {md_escape(text)}")
        else:
            out.extend([md_escape(text), ""])
    return "\n".join(out).rstrip() + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}"
    "th{background:#f3f3f3}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"
)


def render_html(card: Card) -> str:
    """The card as one self-contained HTML page (inline style, no script, nothing fetched)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(card.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(card.title)}</h1>",
    ]
    in_list = False
    for block in card.blocks:
        is_li = not isinstance(block, Table) and block[0] == "li"
        if in_list and not is_li:
            parts.append("</ul>")
        if is_li and not in_list:
            parts.append("<ul>")
        in_list = is_li
        if isinstance(block, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            tag = {"h2": "h2", "li": "li"}.get(block[0], "p")
            parts.append(f"<{tag}>{esc(block[1])}</{tag}>")
    if in_list:
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- content


def fmt(value: Any) -> str:
    """A figure as the card shows it: ``–`` for none, 4 significant digits, thousands
    separators for counts.

    Examples
    --------
    >>> fmt(None), fmt(0.123456), fmt(12345), fmt(True), fmt("x")
    ('–', '0.1235', '12,345', 'yes', 'x')
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if np.isfinite(value) else str(value)
    return str(value)


def numeric_quantiles(series: SeriesProfile, qs: Sequence[float] = QUANTILES) -> list[float | None]:
    """Quantiles of a numeric reference series read from its fine grid: for each ``q`` the
    first edge with at least ``q`` of the values below it (edges are reference values at
    the fine quantiles, so this is within one fine bin, 1 % by default, of the exact
    quantile); ``None`` when the series has no values or ``q`` lies in the last bin.

    Examples
    --------
    >>> from stream_drift.pipeline.reference import build_reference
    >>> ref = build_reference({"x": np.arange(1000.0)}, model="m")
    >>> numeric_quantiles(ref.series["x"], [0.1, 0.5])
    [100.0, 500.0]
    """
    binning = series.binning
    assert isinstance(binning, NumericBinning)
    h = series.histogram
    if h.n == 0 or binning.edges.size == 0:
        return [None for _ in qs]
    below = np.cumsum(h.counts[:-1]) / h.n  # share strictly below each edge
    out: list[float | None] = []
    for q in qs:
        i = int(np.searchsorted(below, q - 1e-12, side="left"))
        out.append(float(binning.edges[i]) if i < binning.edges.size else None)
    return out


def series_summary(series: SeriesProfile) -> str:
    """One line about a reference series' values: quantiles, or the top categories."""
    if series.kind == "numeric":
        values = numeric_quantiles(series)
        return ", ".join(
            f"p{round(q * 100)} ≈ {fmt(v)}" for q, v in zip(QUANTILES, values, strict=True)
        )
    binning = series.binning
    assert isinstance(binning, CategoricalBinning)
    n = series.histogram.n
    counts = series.histogram.counts
    top = [
        f"{name} {counts[i] / n:.1%}"
        for i, name in enumerate(binning.categories[:5])
        if n and counts[i]
    ]
    rest = len(binning.categories) - 5
    return ", ".join(top) + (f" … (+{rest} more)" if rest > 0 else "")


def _version(selection: Selection, reference: ReferenceProfile | None) -> str:
    if selection.model_version is not None:
        return selection.model_version or "-"
    if reference is not None:
        return reference.model_version or "-"
    return "all versions"


def build_card(inputs: CardInputs, *, generated_at: float | None = None) -> Card:
    """The card of :class:`CardInputs`: overview, reference data, reference performance,
    realised performance, drift, multivariate drift, label join and alerts."""
    from stream_drift import __version__

    sel, ref = inputs.selection, inputs.reference
    card = Card(f"Model card: {sel.model} v{_version(sel, ref)}")
    now = time.time() if generated_at is None else generated_at
    card.p(
        f"Generated {format_timestamp(now)} by stream-drift {__version__} from: reference "
        f"{inputs.reference_origin or 'not given'}; results {inputs.results_origin or 'not given'}"
        f" ({len(inputs.results)} record(s)); alerts {inputs.alerts_origin or 'not given'}"
        f" ({len(inputs.alerts)} record(s))."
    )
    _overview(card, inputs)
    _reference_data(card, ref)
    _reference_performance(card, ref)
    _realised_performance(card, inputs.results)
    _drift(card, inputs.results)
    _domain(card, inputs.results)
    _label_join(card, inputs.results)
    _alerts(card, inputs.alerts)
    return card


def _overview(card: Card, inputs: CardInputs) -> None:
    sel, ref = inputs.selection, inputs.reference
    card.h2("Overview")
    meta = ref.metadata if ref is not None else {}
    rows = [
        ["Model", sel.model],
        ["Version", _version(sel, ref)],
        ["Owner", meta.get("owner", "–")],
        ["Intended use", meta.get("intended_use", "–")],
        ["Description", meta.get("description", "–")],
        ["Reference id", ref.id if ref is not None else "–"],
    ]
    if inputs.published_at:
        rows.append(["Reference published", inputs.published_at])
    card.table(["", ""], rows)


def _reference_data(card: Card, ref: ReferenceProfile | None) -> None:
    card.h2("Reference data")
    if ref is None:
        card.p("No reference profile: give --reference FILE, or publish one.")
        return
    rows = max((s.histogram.total for s in ref.series.values()), default=0)
    roles = Counter(s.role for s in ref.series.values())
    card.li(f"Source: {ref.source or 'unknown'}, built {ref.created_at or 'at an unknown time'}")
    card.li(
        f"{rows:,} rows; {roles['feature']} feature(s), {roles['prediction']} prediction output(s)"
    )
    if ref.sample is not None:
        card.li(
            f"Row sample: {len(ref.sample.rows):,} of {ref.sample.population:,} rows "
            f"(seed {ref.sample.seed}), for the domain classifier"
        )
    else:
        card.li("Row sample: none (no multivariate drift check against this reference)")
    card.table(
        ["series", "role", "kind", "n", "missing", "values", "warnings"],
        [
            [
                name,
                s.role,
                s.kind,
                fmt(s.histogram.n),
                f"{s.histogram.missing_ratio:.1%}",
                series_summary(s),
                "; ".join(s.warnings) or "–",
            ]
            for name, s in ref.series.items()
        ],
    )


def _metric_names(metrics: Iterable[str]) -> list[str]:
    """The headline metrics, in a stable order: per-class ones (``f1:<class>``) left out."""
    return sorted({m for m in metrics if ":" not in m})


def _reference_performance(card: Card, ref: ReferenceProfile | None) -> None:
    card.h2("Reference performance")
    perf = ref.performance if ref is not None else None
    if perf is None:
        card.p("Not recorded: build the reference with --label COL to record it.")
        return
    card.p(
        f"Task {perf.task}: {perf.n:,} labelled rows (predictions {perf.prediction or '?'}, "
        f"labels {perf.label or '?'})."
    )
    card.table(["metric", "value"], [[m, fmt(v)] for m, v in sorted(perf.metrics.items())])


def _window_end(result: Mapping[str, Any]) -> str:
    window = result.get("window")
    return str(window.get("end", "?")) if isinstance(window, dict) else "?"


def _tail(card: Card, items: Sequence[Any], what: str) -> Sequence[Any]:
    if len(items) > TABLE_ROWS:
        card.p(f"The last {TABLE_ROWS} of {len(items)} {what}:")
        return items[-TABLE_ROWS:]
    return items


def _realised_performance(card: Card, results: Sequence[Mapping[str, Any]]) -> None:
    card.h2("Realised performance")
    windows = [r for r in results if isinstance(r.get("performance"), dict)]
    if not windows:
        card.p("No window with joined labels in the results read.")
        return
    names = _metric_names(m for r in windows for m in (r["performance"].get("metrics") or {}))
    reference = next(
        (
            r["performance"]["reference"]
            for r in reversed(windows)
            if r["performance"].get("reference")
        ),
        None,
    )
    pairs = sum(int(r["performance"].get("n_pairs") or 0) for r in windows)
    card.p(f"{len(windows)} window(s) with joined labels, {pairs:,} (prediction, label) pairs.")
    rows = [
        [
            _window_end(r),
            r.get("model_version", ""),
            fmt(r["performance"].get("n_pairs")),
            *[fmt((r["performance"].get("metrics") or {}).get(m)) for m in names],
        ]
        for r in _tail(card, windows, "windows")
    ]
    if reference:
        rows.append(["reference", "", "", *[fmt(reference.get(m)) for m in names]])
    card.table(["window end", "version", "pairs", *names], rows)


def _drift(card: Card, results: Sequence[Mapping[str, Any]]) -> None:
    card.h2("Drift")
    if not results:
        card.p("No results read.")
        return
    drifted = [r for r in results if r.get("drifted")]
    first, last = _window_end(results[0]), _window_end(results[-1])
    card.p(
        f"{len(results)} window evaluation(s), windows ending {first} … {last}; "
        f"{len(drifted)} with drift."
    )
    stats: dict[str, dict[str, Any]] = {}
    for r in results:
        for name, e in (r.get("features") or {}).items():
            if not isinstance(e, dict):
                continue
            s = stats.setdefault(name, {"judged": 0, "drift": 0, "worst": "none", "last": None})
            s["judged"] += bool(e.get("judged", True))
            s["drift"] += bool(e.get("drift"))
            sev = str(e.get("severity") or "none")
            if _SEVERITY_RANK.get(sev, 0) > _SEVERITY_RANK.get(s["worst"], 0):
                s["worst"] = sev
            s["last"] = e
    card.table(
        [
            "series",
            "windows judged",
            "windows drifted",
            "worst severity",
            "last severity",
            "last PSI",
        ],
        [
            [
                name,
                fmt(s["judged"]),
                fmt(s["drift"]),
                s["worst"],
                str(s["last"].get("severity") or "none"),
                fmt(s["last"].get("psi")),
            ]
            for name, s in sorted(stats.items(), key=lambda kv: (-kv[1]["drift"], kv[0]))
        ],
    )


def _domain(card: Card, results: Sequence[Mapping[str, Any]]) -> None:
    windows = [r for r in results if isinstance(r.get("domain"), dict)]
    if not windows:
        return
    card.h2("Multivariate drift (domain classifier)")
    above = sum(
        1
        for r in windows
        if isinstance(r["domain"].get("auc"), int | float)
        and isinstance(r["domain"].get("threshold"), int | float)
        and r["domain"]["auc"] > r["domain"]["threshold"]
    )
    card.p(f"{len(windows)} window(s) judged, {above} with the AUC above its threshold.")
    card.table(
        ["window end", "AUC", "threshold", "rows", "top features"],
        [
            [
                _window_end(r),
                fmt(r["domain"].get("auc")),
                fmt(r["domain"].get("threshold")),
                fmt(r["domain"].get("n_rows")),
                ", ".join(str(f) for f in r["domain"].get("top_features") or []) or "–",
            ]
            for r in _tail(card, windows, "windows")
        ],
    )


def _label_join(card: Card, results: Sequence[Mapping[str, Any]]) -> None:
    totals: Counter[str] = Counter()
    for r in results:
        join = r.get("label_join")
        if isinstance(join, dict):
            totals.update({str(k): int(v) for k, v in join.items() if isinstance(v, int)})
    if not totals:
        return
    card.h2("Label join")
    card.table(["outcome", "count"], [[k, fmt(v)] for k, v in sorted(totals.items())])


def _alerts(card: Card, alerts: Sequence[Mapping[str, Any]]) -> None:
    card.h2("Alerts")
    if not alerts:
        card.p("No alert in the records read.")
        return
    latest: dict[str, Mapping[str, Any]] = {}
    for a in alerts:
        key = str(a.get("dedup_key") or (a.get("feature"), a.get("statistic")))
        latest[key] = a
    open_ = [a for a in latest.values() if a.get("status") != "resolved"]
    statuses = Counter(str(a.get("status")) for a in alerts)
    card.p(
        f"{len(alerts)} state change(s) ("
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + f"); {len(open_)} incident(s) still open"
        + (
            ": " + ", ".join(f"{a.get('feature')}/{a.get('statistic')}" for a in open_)
            if open_
            else ""
        )
        + "."
    )
    card.table(
        [
            "evaluated at",
            "status",
            "severity",
            "series",
            "statistic",
            "value",
            "threshold",
            "summary",
        ],
        [
            [
                str(a.get("evaluated_at", "")),
                str(a.get("status", "")),
                str(a.get("severity", "")),
                str(a.get("feature", "")),
                str(a.get("statistic", "")),
                fmt(a.get("value")),
                fmt(a.get("threshold")),
                str(a.get("summary", "")),
            ]
            for a in _tail(card, alerts, "alert state changes")
        ],
    )
