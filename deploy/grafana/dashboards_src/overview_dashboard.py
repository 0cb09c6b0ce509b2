"""Overview dashboard (uid ``stream-drift-overview``): every model at a glance."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import units
from sd_common import (
    CRITICAL_COLOR,
    DATASOURCE,
    OK_COLOR,
    WARNING_COLOR,
    WORKER_JOB,
    alert_state_mappings,
    alert_state_thresholds,
    base_dashboard,
    fixed_color,
    legend,
    override_props,
    palette,
    promql,
    psi_thresholds,
    reduce_last,
    thresholds,
    tooltip,
    transformation,
)

UID = "stream-drift-overview"
FILENAME = "stream-drift-overview.json"
MODEL_UID = "stream-drift-model"

RATE = "[$__rate_interval]"
OUTCOME_COLORS = {"accepted": OK_COLOR, "late": "orange", "invalid": CRITICAL_COLOR}


def _model_link(title: str) -> list[dm.DynamicConfigValue]:
    """A data link from a table cell to the per-model dashboard of that row's model."""
    url = (
        f"/d/{MODEL_UID}/{MODEL_UID}?var-datasource=${{datasource}}"
        "&var-model=${__data.fields.model}&${__url_time_range}"
    )
    return override_props(links=[{"title": title, "url": url, "targetBlank": False}])


def psi_matrix() -> table.Panel:
    return (
        table.Panel()
        .title("PSI by model and feature")
        .description(
            "Latest judged PSI of every model (rows) and feature (columns), the highest over "
            "model versions: green below 0.1, yellow from 0.1, red from 0.2."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                'max by (model, feature) (stream_drift_statistic{statistic="psi"})',
                instant=True,
                table=True,
            )
        )
        .with_transformation(
            transformation(
                "groupingToMatrix",
                {
                    "columnField": "feature",
                    "rowField": "model",
                    "valueField": "Value",
                    "emptyValue": "null",
                },
            )
        )
        .unit(units.NoUnit)
        .decimals(3)
        .thresholds(psi_thresholds())
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .override_by_field_type(
            "number",
            override_props(custom__cellOptions={"type": "color-background", "mode": "basic"}),
        )
        .no_value("No judged PSI yet")
        .show_header(True)
        .cell_height(cm.TableCellHeight.SM)
        .height(10)
        .span(16)
    )


def drifting_series() -> table.Panel:
    return (
        table.Panel()
        .title("Drifting series now")
        .description(
            "Every model, version, feature and statistic whose alert state is warning or "
            "critical now; click a model to open its dashboard."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "max by (model, model_version, feature, statistic) (stream_drift_alert_state) > 0",
                instant=True,
                table=True,
            )
        )
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True},
                    "indexByName": {
                        "model": 0,
                        "model_version": 1,
                        "feature": 2,
                        "statistic": 3,
                        "Value": 4,
                    },
                    "renameByName": {"model_version": "version", "Value": "state"},
                },
            )
        )
        .mappings(alert_state_mappings())
        .thresholds(alert_state_thresholds())
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .override_by_name(
            "state",
            override_props(custom__cellOptions={"type": "color-background", "mode": "basic"}),
        )
        .override_by_name("model", _model_link("Open the model dashboard"))
        .no_value("No drift")
        .show_header(True)
        .height(10)
        .span(8)
    )


def firing_alerts() -> table.Panel:
    return (
        table.Panel()
        .title("Prometheus alerts")
        .description(
            "stream_drift alerting rules (StreamDriftWarning, StreamDriftCritical, "
            "StreamDriftWorkerDown, …) that are pending or firing now."
        )
        .datasource(DATASOURCE)
        .with_target(promql('ALERTS{alertname=~"StreamDrift.*"}', instant=True, table=True))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "Value": True, "__name__": True},
                    "indexByName": {"alertname": 0, "alertstate": 1, "severity": 2},
                    "renameByName": {},
                },
            )
        )
        .override_by_name(
            "alertstate",
            override_props(
                custom__cellOptions={"type": "color-text"},
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "firing": {"color": CRITICAL_COLOR, "index": 0},
                            "pending": {"color": WARNING_COLOR, "index": 1},
                        },
                    }
                ],
            ),
        )
        .no_value("No alert")
        .show_header(True)
        .height(8)
        .span(10)
    )


def alerts_raised() -> stat.Panel:
    return (
        stat.Panel()
        .title("Drift alerts raised")
        .description(
            "Drift alerts the workers raised over the dashboard's time range, by severity "
            "(increase of stream_drift_alerts_total)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "sum by (severity) (increase(stream_drift_alerts_total[$__range]))",
                "{{severity}}",
                instant=True,
            )
        )
        .reduce_options(reduce_last())
        .unit(units.Short)
        .decimals(0)
        .thresholds(thresholds((None, OK_COLOR), (1, WARNING_COLOR)))
        .override_by_name("critical", override_props(color={"mode": "fixed", "fixedColor": "red"}))
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .no_value("0")
        .height(8)
        .span(6)
    )


def events_by_outcome() -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title("Events/s by outcome")
        .description(
            "Events read per second, all models together: accepted into windows, invalid "
            "(dead-lettered) or late (behind the watermark)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f"sum by (outcome) (rate(stream_drift_events_total{RATE}))",
                "{{outcome}}",
            )
        )
        .unit(units.EventsPerSecond)
        .min(0)
        .color_scheme(palette())
        .fill_opacity(10)
        .legend(legend("mean", "lastNotNull"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )
    for outcome, color in OUTCOME_COLORS.items():
        panel.override_by_name(
            outcome, override_props(color={"mode": "fixed", "fixedColor": color})
        )
    return panel


def bad_event_ratios() -> timeseries.Panel:
    total = f"sum by (model) (rate(stream_drift_events_total{RATE}))"

    def ratio(outcome: str) -> str:
        part = f'sum by (model) (rate(stream_drift_events_total{{outcome="{outcome}"}}{RATE}))'
        return f"{part} / {total}"

    return (
        timeseries.Panel()
        .title("Invalid and late event ratio")
        .description(
            "Share of each model's events that were invalid or arrived too late to be counted; "
            "a rise usually means an upstream schema or clock problem."
        )
        .datasource(DATASOURCE)
        .with_target(promql(ratio("invalid"), "{{model}} invalid", "A"))
        .with_target(promql(ratio("late"), "{{model}} late", "B"))
        .unit(units.PercentUnit)
        .min(0)
        .color_scheme(palette())
        .legend(legend("mean", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def consumer_lag() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Consumer lag")
        .description(
            "Records between each input partition's high-water mark and the next offset its "
            "worker will ingest; a steady climb means the workers cannot keep up."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "max by (topic, partition) (stream_drift_consumer_lag_records)",
                "{{topic}}/{{partition}}",
            )
        )
        .unit(units.Short)
        .decimals(0)
        .min(0)
        .color_scheme(palette())
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def deadletters() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Dead-lettered records/s by reason")
        .description(
            "Records per second sent to the dead-letter topic, by reason code (malformed_json, "
            "unknown_model, bad_timestamp, …)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(f"sum by (reason) (rate(stream_drift_deadletter_total{RATE}))", "{{reason}}")
        )
        .unit(units.RecordsPerSecond)
        .min(0)
        .color_scheme(palette())
        .legend(legend("mean", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def workers_up() -> stat.Panel:
    return (
        stat.Panel()
        .title("Workers up")
        .description(
            f'Workers Prometheus scraped successfully (sum of up{{job="{WORKER_JOB}"}}) '
            "out of the worker targets it knows."
        )
        .datasource(DATASOURCE)
        .with_target(promql(f'sum(up{{job="{WORKER_JOB}"}})', "up", "A", instant=True))
        .with_target(promql(f'count(up{{job="{WORKER_JOB}"}})', "targets", "B", instant=True))
        .reduce_options(reduce_last())
        .unit(units.Short)
        .decimals(0)
        .thresholds(thresholds((None, CRITICAL_COLOR), (1, OK_COLOR)))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .override_by_name("targets", override_props(color={"mode": "fixed", "fixedColor": "blue"}))
        .no_value("0")
        .height(6)
        .span(5)
    )


def build_info() -> table.Panel:
    return (
        table.Panel()
        .title("Worker versions")
        .description("stream_drift versions running now and how many workers run each one.")
        .datasource(DATASOURCE)
        .with_target(
            promql("count by (version) (stream_drift_build_info)", instant=True, table=True)
        )
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True},
                    "indexByName": {"version": 0, "Value": 1},
                    "renameByName": {"Value": "workers"},
                },
            )
        )
        .no_value("No worker")
        .show_header(True)
        .height(6)
        .span(5)
    )


def window_settings() -> stat.Panel:
    return (
        stat.Panel()
        .title("Window size and step")
        .description(
            "Event-time window length and slide step the workers are configured with "
            "(step equal to size means tumbling windows)."
        )
        .datasource(DATASOURCE)
        .with_target(promql("max(stream_drift_window_size_seconds)", "size", "A", instant=True))
        .with_target(promql("max(stream_drift_window_step_seconds)", "step", "B", instant=True))
        .reduce_options(reduce_last())
        .unit(units.Seconds)
        .color_scheme(fixed_color("text"))
        .color_mode(cm.BigValueColorMode.NONE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .height(6)
        .span(7)
    )


def series_dropped() -> stat.Panel:
    return (
        stat.Panel()
        .title("Metric series dropped")
        .description(
            "Metric series the workers refused over the time range because the per-metric "
            "series cap was reached (should stay 0)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "sum(increase(stream_drift_series_dropped_total[$__range]))",
                "dropped",
                instant=True,
            )
        )
        .reduce_options(reduce_last())
        .unit(units.Short)
        .decimals(0)
        .thresholds(thresholds((None, OK_COLOR), (1, CRITICAL_COLOR)))
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .no_value("0")
        .height(6)
        .span(7)
    )


def evaluation_latency() -> timeseries.Panel:
    def quantile(q: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(stream_drift_evaluation_duration_seconds_bucket{RATE})))"
        )

    return (
        timeseries.Panel()
        .title("Evaluation latency")
        .description(
            "Median and 99th percentile wall time of one window evaluation (all statistics of "
            "all features, and the alert decisions), across workers."
        )
        .datasource(DATASOURCE)
        .with_target(promql(quantile("0.5"), "p50", "A"))
        .with_target(promql(quantile("0.99"), "p99", "B"))
        .unit(units.Seconds)
        .min(0)
        .color_scheme(palette())
        .legend(legend("mean", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def time_since_evaluation() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Time since last evaluation")
        .description(
            "Seconds since each model's last window evaluation; it keeps growing when a "
            "model's events or watermark stop."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "time() - max by (model) (stream_drift_last_evaluation_timestamp_seconds)",
                "{{model}}",
            )
        )
        .unit(units.Seconds)
        .min(0)
        .color_scheme(palette())
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def top_psi() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Highest PSI now")
        .description(
            "The ten model/feature pairs with the highest latest PSI, coloured by the 0.1 and "
            "0.2 PSI bands."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                'topk(10, max by (model, feature) (stream_drift_statistic{statistic="psi"}))',
                "{{model}} / {{feature}}",
                instant=True,
            )
        )
        .reduce_options(reduce_last())
        .thresholds(psi_thresholds())
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .decimals(3)
        .min(0)
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .no_value("No judged PSI yet")
        .height(8)
        .span(8)
    )


def build() -> db.Dashboard:
    return (
        base_dashboard(
            UID,
            "stream_drift / Overview",
            "Drift of every model and feature, alerts, event intake and worker health.",
        )
        .annotation(
            db.AnnotationQuery()
            .name("Drift alerts")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color(CRITICAL_COLOR)
            .expr('ALERTS{alertname=~"StreamDrift(Warning|Critical)", alertstate="firing"}')
        )
        .with_row(db.Row("Drift"))
        .with_panel(psi_matrix())
        .with_panel(drifting_series())
        .with_panel(top_psi())
        .with_panel(firing_alerts())
        .with_panel(alerts_raised())
        .with_row(db.Row("Event intake"))
        .with_panel(events_by_outcome())
        .with_panel(bad_event_ratios())
        .with_panel(consumer_lag())
        .with_panel(deadletters())
        .with_row(db.Row("Workers"))
        .with_panel(workers_up())
        .with_panel(build_info())
        .with_panel(window_settings())
        .with_panel(series_dropped())
        .with_panel(evaluation_latency())
        .with_panel(time_since_evaluation())
    )
