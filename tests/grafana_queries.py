r"""The PromQL of the committed Grafana dashboards, as Grafana would send it.

Used by ``tests/test_dashboards.py`` (every query parses on a real Prometheus and names
only exported metrics) and by end-to-end tests that run the dashboards' queries against a
Prometheus scraping a real worker:

>>> import json
>>> overview = json.loads(dashboard_files()[0].read_text())
>>> title, expr = panel_queries(overview)[0]
>>> print(render('rate(x{model="$model", feature=~"${feature}"}[$__rate_interval])',
...              {"model": "fraud", "feature": ["amount", "v1.2"]}, range_s=3600))
rate(x{model="fraud", feature=~"(amount|v1\\.2)"}[60s])

Variable values are a ``str`` (one value, inserted into the PromQL string as is, with only
``\`` and ``"`` escaped: pass ``".*"`` for a multi-value variable set to *All*) or a
sequence of strings (a multi-value selection: Grafana's ``(a|b)`` regex, each value
regex-escaped).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"

#: Grafana's default minimum step of a Prometheus datasource (its ``timeInterval``).
DEFAULT_SCRAPE_INTERVAL_S = 15
#: Roughly the number of points Grafana asks for in a full-width panel.
DEFAULT_MAX_DATA_POINTS = 1000

__all__ = [
    "DASHBOARD_DIR",
    "dashboard_files",
    "iter_panels",
    "label_matchers",
    "label_values_selector",
    "load_dashboards",
    "metric_names",
    "panel_queries",
    "render",
    "variable_names",
    "variable_queries",
]


def dashboard_files() -> list[Path]:
    """The committed dashboard JSON files, sorted by name."""
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboards() -> dict[str, dict[str, Any]]:
    """``{file name: parsed dashboard}`` of :func:`dashboard_files`."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in dashboard_files()}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels nested in (collapsed) rows.

    >>> [p["title"] for p in iter_panels({"panels": [
    ...     {"type": "row", "title": "r", "panels": [{"title": "in"}]}, {"title": "top"}]})]
    ['r', 'in', 'top']
    """
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from iter_panels(panel)


# --- variable queries -------------------------------------------------------------------------

_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<args>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.DOTALL)


def _split_top_level_comma(text: str) -> list[str]:
    """Split on commas outside quotes, braces, brackets and parentheses."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return parts


def label_values_selector(query: str) -> tuple[str, str] | None:
    """``(series selector, label)`` of a ``label_values(...)`` variable query, else None.

    Grafana answers ``label_values(metric{sel}, label)`` from the series matching
    ``metric{sel}``; ``label_values(label)`` from every series carrying ``label``.

    >>> label_values_selector('label_values(m{a="x, y"}, feature)')
    ('m{a="x, y"}', 'feature')
    >>> label_values_selector("label_values(model)")
    ('{model!=""}', 'model')
    >>> label_values_selector("up") is None
    True
    """
    match = _LABEL_VALUES.match(query)
    if match is None:
        return None
    args = _split_top_level_comma(match["args"])
    if len(args) == 1:
        return f'{{{args[0]}!=""}}', args[0]
    if len(args) == 2:
        return args[0], args[1]
    raise ValueError(f"cannot read label_values query {query!r}")


def _variable_query_text(variable: Mapping[str, Any]) -> str:
    query = variable.get("query", "")
    if isinstance(query, Mapping):
        query = query.get("query", "")
    return str(query)


def variable_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """``(variable name, PromQL, label or None)`` of every ``query`` templating variable.

    ``label_values(sel, label)`` gives ``(name, sel, label)``: run ``sel`` as an instant
    query and read ``label`` from the result; ``query_result(expr)`` gives
    ``(name, expr, None)``.
    """
    out: list[tuple[str, str, str | None]] = []
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        text = _variable_query_text(variable)
        selector = label_values_selector(text)
        if selector is not None:
            out.append((variable["name"], selector[0], selector[1]))
            continue
        result = _QUERY_RESULT.match(text)
        if result is not None:
            out.append((variable["name"], result["expr"].strip(), None))
            continue
        raise ValueError(f"variable {variable['name']!r}: unsupported query {text!r}")
    return out


def variable_names(dashboard: Mapping[str, Any]) -> list[str]:
    """Names of the dashboard's templating variables, in order."""
    return [v["name"] for v in (dashboard.get("templating") or {}).get("list") or []]


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(title, PromQL)`` of every panel target, variable query and annotation query.

    Panel targets come first (rows included, in dashboard order), titled by their panel;
    variables are titled ``"variable <name>"`` with ``label_values(sel, label)`` turned into
    ``sel``; annotations are titled ``"annotation <name>"``. Hidden targets are included.
    """
    out: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if expr:
                out.append((str(panel.get("title", "")), str(expr)))
    for name, expr, _label in variable_queries(dashboard):
        out.append((f"variable {name}", expr))
    for annotation in (dashboard.get("annotations") or {}).get("list") or []:
        if annotation.get("expr"):
            out.append((f"annotation {annotation.get('name', '')}", str(annotation["expr"])))
    return out


# --- rendering --------------------------------------------------------------------------------

# Grafana's variable syntaxes: $name, [[name]] / [[name:fmt]], ${name} / ${name:fmt}.
_VARIABLE = re.compile(
    r"\$(?P<plain>\w+)|\[\[(?P<bracket>\w+?)(?::\w+)?\]\]|\$\{(?P<braced>\w+)(?::[^}]+)?\}"
)
_REGEX_SPECIAL = re.compile(r"[\\$^*{}\[\]'+?.()|]")


def _promql_string_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _multi_value(values: Sequence[str]) -> str:
    """Grafana's Prometheus interpolation of a multi-value selection."""
    escaped = [_promql_string_escape(_REGEX_SPECIAL.sub(r"\\\g<0>", v)) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _builtins(range_s: int, scrape_interval_s: int, max_data_points: int) -> dict[str, str]:
    interval_s = max(scrape_interval_s, math.ceil(range_s / max_data_points))
    rate_interval_s = max(interval_s + scrape_interval_s, 4 * scrape_interval_s)
    return {
        "__interval": f"{interval_s}s",
        "__interval_ms": str(interval_s * 1000),
        "__rate_interval": f"{rate_interval_s}s",
        "__rate_interval_ms": str(rate_interval_s * 1000),
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__range_ms": str(range_s * 1000),
    }


def render(
    expr: str,
    variables: Mapping[str, str | Sequence[str]],
    range_s: int,
    *,
    scrape_interval_s: int = DEFAULT_SCRAPE_INTERVAL_S,
    max_data_points: int = DEFAULT_MAX_DATA_POINTS,
) -> str:
    r"""``expr`` with Grafana's variables replaced, ready for ``/api/v1/query``.

    ``range_s`` is the dashboard time range in seconds (``$__range``); ``$__interval`` is
    ``max(scrape_interval_s, range_s / max_data_points)`` and ``$__rate_interval`` is
    ``max($__interval + scrape_interval_s, 4 * scrape_interval_s)``, as Grafana computes them
    (without its rounding to "nice" intervals). Raises ``KeyError`` naming any variable that
    is neither built in nor in ``variables``.

    >>> print(render('increase(x{m="${model}"}[$__range]) / $__interval_ms', {"model": 'a"b'}, 600))
    increase(x{m="a\"b"}[600s]) / 15000
    >>> print(render("sum(rate(x[$__rate_interval]))", {}, 86400, scrape_interval_s=5))
    sum(rate(x[92s]))
    >>> print(render('x{feature=~"$feature"}', {"feature": [".*", "a|b"]}, 60))
    x{feature=~"(\\.\\*|a\\|b)"}
    >>> render("x{m='$nope'}", {}, 60)
    Traceback (most recent call last):
    ...
    KeyError: "unknown Grafana variable(s) in x{m='$nope'}: nope"
    """
    values: dict[str, str] = _builtins(range_s, scrape_interval_s, max_data_points)
    for name, value in variables.items():
        values[name] = (
            _promql_string_escape(value) if isinstance(value, str) else _multi_value(value)
        )
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match["plain"] or match["bracket"] or match["braced"]
        if name not in values:
            missing.append(name)
            return match[0]
        return values[name]

    rendered = _VARIABLE.sub(substitute, expr)
    if missing:
        raise KeyError(f"unknown Grafana variable(s) in {expr}: {', '.join(sorted(set(missing)))}")
    return rendered


# --- static analysis of PromQL ----------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.DOTALL)
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_TOKEN = re.compile(r"\$\{?\w+\}?|\d[\w.]*|(?P<ident>[A-Za-z_:][\w:]*)(?P<call>\s*\()?")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_NAME_MATCHER = re.compile(r"__name__\s*=\s*(?P<q>[\"'`])(?P<name>[A-Za-z_:][\w:]*)(?P=q)")
_SELECTOR = re.compile(r"(?P<metric>[A-Za-z_:][\w:]*)?\s*\{(?P<body>[^{}]*)\}")
_MATCHER_LABEL = re.compile(r"(?P<label>[A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def _blank_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords and labels left out).

    >>> sorted(metric_names(
    ...     'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y{z}"}[5m] offset 1h)))'
    ...     ' / on (model) group_left (feature) b + {__name__="c"} and sum(d) without (e)'))
    ['a_bucket', 'b', 'c', 'd']
    >>> sorted(metric_names("topk(5, max by (feature) (m{f=~'$feature'})) > bool 1e-3"))
    ['m']
    """
    names = {m["name"] for m in _NAME_MATCHER.finditer(expr)}
    text = _blank_strings(expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for token in _TOKEN.finditer(text):
        ident = token["ident"]
        if ident is None or token["call"] is not None or ident.lower() in _KEYWORDS:
            continue
        names.add(ident)
    return names


def label_matchers(expr: str) -> list[tuple[str | None, set[str]]]:
    """``(metric name or None, label names matched)`` of every ``{...}`` selector.

    >>> [(m, sorted(labels)) for m, labels in label_matchers(
    ...     'rate(m{a="1", b=~"x,y"}[5m]) + {__name__="n", c!=""}')]
    [('m', ['a', 'b']), (None, ['__name__', 'c'])]
    """
    text = _blank_strings(expr)
    return [
        (m["metric"], {lm["label"] for lm in _MATCHER_LABEL.finditer(m["body"])})
        for m in _SELECTOR.finditer(text)
    ]


def grouping_labels(expr: str) -> set[str]:
    """Label names in ``by``/``without``/``on``/``ignoring``/``group_*`` clauses.

    >>> sorted(grouping_labels("sum by (model, le) (x) / on(model) group_left() y"))
    ['le', 'model']
    """
    text = _blank_strings(expr)
    labels: set[str] = set()
    for clause in _GROUPING.finditer(text):
        inside = clause[0][clause[0].index("(") + 1 : -1]
        labels.update(part.strip() for part in inside.split(",") if part.strip())
    return labels
