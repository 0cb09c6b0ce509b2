"""Pieces shared by the stream_drift dashboards: datasource, queries, colours, JSON output.

Built with the official Grafana Foundation SDK (``grafana-foundation-sdk`` on PyPI).
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

#: uid (and name) of the provisioned Prometheus datasource, see
#: ``deploy/grafana/provisioning/datasources/prometheus.yml``.
DATASOURCE_UID = "prometheus"
#: Every panel, target and query variable uses the ``datasource`` variable, which defaults
#: to the provisioned datasource but lets an imported dashboard pick another one.
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: Tag shared by the stream_drift dashboards (the dashboards link to each other by it).
TAG = "stream-drift"
#: Prometheus job name of the workers (``up{job=...}``).
WORKER_JOB = "stream-drift"

OK_COLOR = "green"
WARNING_COLOR = "yellow"
CRITICAL_COLOR = "red"

#: PSI rule of thumb: < 0.1 no shift, 0.1-0.2 moderate, >= 0.2 significant.
PSI_WARNING = 0.1
PSI_CRITICAL = 0.2

# Grafana adds this built-in annotation to any dashboard that lacks one; the SDK's
# AnnotationQuery has no ``builtIn`` field, so it is written here to keep the JSON stable.
_BUILTIN_ANNOTATION: dict[str, Any] = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def datasource_variable() -> db.DatasourceVariable:
    """The ``datasource`` variable: any Prometheus datasource, default the provisioned one."""
    return (
        db.DatasourceVariable("datasource")
        .id("datasource")
        .label("Data source")
        .type("prometheus")
        .current(dm.VariableOption(selected=True, text=DATASOURCE_UID, value=DATASOURCE_UID))
        .regex("")
    )


def query_variable(name: str, label: str, query: str) -> db.QueryVariable:
    """A ``label_values`` variable, refreshed when the time range changes, sorted A→Z."""
    return (
        db.QueryVariable(name)
        .id(name)  # Grafana keys variables by id; the SDK's default id is the same for all
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def all_option(multi: bool) -> dm.VariableOption:
    """The *All* selection, as Grafana stores it for a single- or multi-value variable."""
    if multi:
        return dm.VariableOption(selected=True, text=["All"], value=["$__all"])
    return dm.VariableOption(selected=True, text="All", value="$__all")


def promql(
    expr: str,
    legend: str = "__auto",
    ref_id: str = "A",
    *,
    instant: bool = False,
    table: bool = False,
) -> prometheus.Dataquery:
    """A Prometheus target; ``instant`` for current values, ``table`` for table panels."""
    query = (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
        .editor_mode(QueryEditorMode.CODE)
    )
    if instant:
        query.instant()
    else:
        query.range()
    query.format(PromQueryFormat.TABLE if table else PromQueryFormat.TIME_SERIES)
    return query


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def psi_thresholds() -> db.ThresholdsConfig:
    """Green below 0.1, yellow from 0.1, red from 0.2."""
    return thresholds(
        (None, OK_COLOR), (PSI_WARNING, WARNING_COLOR), (PSI_CRITICAL, CRITICAL_COLOR)
    )


def alert_state_thresholds() -> db.ThresholdsConfig:
    """The colours of ``stream_drift_alert_state``: 0 ok, 1 warning, 2 critical."""
    return thresholds((None, OK_COLOR), (1, WARNING_COLOR), (2, CRITICAL_COLOR))


def alert_state_mappings() -> list[dm.ValueMapping]:
    """Value mappings of ``stream_drift_alert_state``: 0 ok, 1 warning, 2 critical."""
    return [
        dm.ValueMap(
            options={
                "0": dm.ValueMappingResult(text="ok", color=OK_COLOR, index=0),
                "1": dm.ValueMappingResult(text="warning", color=WARNING_COLOR, index=1),
                "2": dm.ValueMappingResult(text="critical", color=CRITICAL_COLOR, index=2),
            }
        )
    ]


def fixed_color(color: str) -> db.FieldColor:
    return db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(color)


def palette() -> db.FieldColor:
    return db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC)


def legend(*calcs: str, table: bool = False) -> cb.VizLegendOptions:
    """A bottom legend; ``calcs`` (e.g. ``"lastNotNull"``, ``"max"``) turn it into a table."""
    mode = cm.LegendDisplayMode.TABLE if table or calcs else cm.LegendDisplayMode.LIST
    return (
        cb.VizLegendOptions()
        .display_mode(mode)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(list(calcs))
    )


def tooltip() -> cb.VizTooltipOptions:
    return cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)


def reduce_last() -> cb.ReduceDataOptions:
    """Reduce every series to its last non-null value."""
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")


def override_props(**props: object) -> list[dm.DynamicConfigValue]:
    """Field-override properties; ``custom__cellOptions`` stands for ``custom.cellOptions``."""
    return [dm.DynamicConfigValue(id_val=k.replace("__", "."), value=v) for k, v in props.items()]


def transformation(id_val: str, options: dict[str, Any]) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val=id_val, options=options)


def base_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with the settings shared by every stream_drift dashboard."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .link(
            db.DashboardLink("stream_drift")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
            .target_blank(False)
        )
        .with_variable(datasource_variable())
    )


def to_json(dashboard: db.Dashboard) -> str:
    """The dashboard as committed: panel ids numbered in order, sorted keys, 2-space indent."""
    model = dashboard.build()
    next_id = 1
    for panel in model.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next_id
            next_id += 1
    doc: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    annotations = doc.setdefault("annotations", {}).setdefault("list", [])
    annotations.insert(0, dict(_BUILTIN_ANNOTATION))
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
