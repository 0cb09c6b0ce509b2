"""Per-model dashboard (uid ``stream-drift-model``): one model, its versions and features."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import units
from sd_common import (
    CRITICAL_COLOR,
    DATASOURCE,
    OK_COLOR,
    WARNING_COLOR,
    alert_state_mappings,
    alert_state_thresholds,
    all_option,
    base_dashboard,
    legend,
    override_props,
    palette,
    promql,
    psi_thresholds,
    query_variable,
    reduce_last,
    thresholds,
    tooltip,
    transformation,
)

UID = "stream-drift-model"
FILENAME = "stream-drift-model.json"

RATE = "[$__rate_interval]"
#: Series of the selected model, version(s) and feature(s).
SELECTED = 'model="$model", model_version=~"$version", feature=~"$feature"'
#: Legend of a per-feature series (the version tells apart a rollout's two models).
FEATURE_LEGEND = "{{feature}} ({{model_version}})"

#: statistic label -> (panel title, what the value is).
STATISTICS: dict[str, tuple[str, str]] = {
    "psi": ("PSI", "population stability index"),
    "kl": ("KL divergence", "Kullback-Leibler divergence of the window from the reference"),
    "js": ("JS distance", "Jensen-Shannon distance between window and reference"),
    "ks": ("KS statistic", "Kolmogorov-Smirnov distance between the two CDFs"),
    "chi2": ("Chi-square statistic", "chi-square statistic of the window's bin counts"),
}


def variables() -> list[db.QueryVariable]:
    model = query_variable("model", "Model", "label_values(stream_drift_window_samples, model)")
    version = (
        query_variable(
            "version",
            "Version",
            'label_values(stream_drift_window_samples{model="$model"}, model_version)',
        )
        .include_all(True)
        .all_value(".*")
        .current(all_option(multi=False))
    )
    feature = (
        query_variable(
            "feature",
            "Feature",
            "label_values(stream_drift_statistic"
            '{model="$model", model_version=~"$version"}, feature)',
        )
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(all_option(multi=True))
    )
    return [model, version, feature]


def dashed_thresholds(panel: timeseries.Panel) -> timeseries.Panel:
    """Draw the series whose legend ends in `` threshold`` as thin dashed lines."""
    return panel.override_by_regexp(
        ".* threshold$",
        override_props(
            custom__lineStyle={"fill": "dash", "dash": [10, 10]},
            custom__lineWidth=1,
            custom__fillOpacity=0,
        ),
    )


def statistic_panel(statistic: str) -> timeseries.Panel:
    title, what = STATISTICS[statistic]
    value = (
        f"max by (model_version, feature) "
        f'(stream_drift_statistic{{{SELECTED}, statistic="{statistic}"}})'
    )
    threshold = (
        f"max by (model_version, feature) "
        f'(stream_drift_threshold{{{SELECTED}, statistic="{statistic}"}})'
    )
    description = (
        f"{title} ({what}) of each selected feature's last judged window, with the dashed "
        "threshold it was judged against (the threshold loosens as the window's sample "
        "size falls)."
    )
    panel = dashed_thresholds(
        timeseries.Panel()
        .title(f"{title} vs threshold")
        .datasource(DATASOURCE)
        .with_target(promql(value, FEATURE_LEGEND, "A"))
        .with_target(promql(threshold, FEATURE_LEGEND + " threshold", "B"))
        .min(0)
        .decimals(3)
        .color_scheme(palette())
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(9)
        .span(12)
    )
    if statistic == "psi":
        description = (
            "PSI of each selected feature's last judged window with the dashed threshold it "
            "was judged against; the background bands mark the usual 0.1 (moderate) and "
            "0.2 (significant) PSI levels."
        )
        panel.thresholds(psi_thresholds()).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.LINE_AND_AREA)
        )
    return panel.description(description)


def top_moving() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Top-moving features (PSI)")
        .description(
            "The five features of the model with the highest latest PSI, whatever the feature "
            "selection, coloured by the 0.1 and 0.2 PSI bands."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "topk(5, max by (feature) (stream_drift_statistic"
                '{model="$model", model_version=~"$version", statistic="psi"}))',
                "{{feature}}",
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
        .height(9)
        .span(12)
    )


def p_values() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("p-values")
        .description(
            "p-value of each statistic's test on the last judged window, on a log scale: the "
            "lower, the stronger the evidence of drift."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f"min by (model_version, feature, statistic) (stream_drift_p_value{{{SELECTED}}})",
                "{{feature}} {{statistic}} ({{model_version}})",
            )
        )
        .unit(units.ScientificNotation)
        .max(1)
        .scale_distribution(cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(10))
        .color_scheme(palette())
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(legend("lastNotNull", "min"))
        .tooltip(tooltip())
        .height(9)
        .span(12)
    )


def alert_state() -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title("Alert state")
        .description(
            "Alert state of each selected feature and statistic over time: ok, warning or "
            "critical (with the alerts' hysteresis, not the raw per-window verdict)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "max by (model_version, feature, statistic) "
                f"(stream_drift_alert_state{{{SELECTED}}})",
                "{{feature}} {{statistic}} ({{model_version}})",
            )
        )
        .mappings(alert_state_mappings())
        .thresholds(alert_state_thresholds())
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .legend(legend())
        .tooltip(tooltip())
        .height(9)
        .span(12)
    )


def alerts_raised() -> stat.Panel:
    return (
        stat.Panel()
        .title("Drift alerts raised")
        .description(
            "Drift alerts raised for this model over the dashboard's time range, by severity."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                'sum by (severity) (increase(stream_drift_alerts_total{model="$model"}[$__range]))',
                "{{severity}}",
                instant=True,
            )
        )
        .reduce_options(reduce_last())
        .unit(units.Short)
        .decimals(0)
        .thresholds(thresholds((None, OK_COLOR), (1, WARNING_COLOR)))
        .override_by_name(
            "critical", override_props(color={"mode": "fixed", "fixedColor": CRITICAL_COLOR})
        )
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .no_value("0")
        .height(7)
        .span(6)
    )


def firing_alerts() -> table.Panel:
    return (
        table.Panel()
        .title("Prometheus alerts for this model")
        .description(
            "stream_drift alerting rules pending or firing now for this model, one row per "
            "feature and statistic."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql('ALERTS{alertname=~"StreamDrift.*", model="$model"}', instant=True, table=True)
        )
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "Value": True, "__name__": True},
                    "indexByName": {"alertname": 0, "alertstate": 1, "feature": 2, "statistic": 3},
                    "renameByName": {},
                },
            )
        )
        .no_value("No alert")
        .show_header(True)
        .height(7)
        .span(18)
    )


def window_samples() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Window samples")
        .description(
            "Events in each selected feature's last evaluated window; thresholds loosen as it "
            "falls and windows below the minimum sample size are not judged."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f"max by (model_version, feature) (stream_drift_window_samples{{{SELECTED}}})",
                FEATURE_LEGEND,
            )
        )
        .unit(units.Short)
        .decimals(0)
        .min(0)
        .color_scheme(palette())
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(legend("lastNotNull", "min"))
        .tooltip(tooltip())
        .height(8)
        .span(8)
    )


def missing_ratio() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Missing ratio")
        .description(
            "Share of the last evaluated window's events in which each selected feature was "
            "missing or null."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f"max by (model_version, feature) (stream_drift_missing_ratio{{{SELECTED}}})",
                FEATURE_LEGEND,
            )
        )
        .unit(units.PercentUnit)
        .min(0)
        .max(1)
        .color_scheme(palette())
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(8)
    )


def events_by_outcome() -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title("Events/s by outcome")
        .description(
            "This model's events per second: accepted into windows, invalid (dead-lettered) "
            "or late (behind the watermark)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f'sum by (outcome) (rate(stream_drift_events_total{{model="$model"}}{RATE}))',
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
        .span(8)
    )
    for outcome, color in (("accepted", OK_COLOR), ("late", "orange"), ("invalid", "red")):
        panel.override_by_name(
            outcome, override_props(color={"mode": "fixed", "fixedColor": color})
        )
    return panel


def late_events() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Late events/s")
        .description(
            "This model's events per second that arrived behind the watermark, after their "
            "window had closed, and were left out of it."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f'sum(rate(stream_drift_late_events_total{{model="$model"}}{RATE}))',
                "late",
            )
        )
        .unit(units.EventsPerSecond)
        .min(0)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("orange"))
        .fill_opacity(10)
        .legend(legend("mean", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(8)
    )


def watermark_lag() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Watermark lag")
        .description(
            "How far this model's event-time watermark trails the wall clock; a window is "
            "evaluated only once the watermark passes its end."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql('max(stream_drift_watermark_lag_seconds{model="$model"})', "watermark lag")
        )
        .unit(units.Seconds)
        .min(0)
        .color_scheme(palette())
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(8)
    )


def time_since_evaluation() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Time since last evaluation")
        .description(
            "Seconds since this model's last window evaluation; it keeps growing when its "
            "events or watermark stop."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                'time() - max(stream_drift_last_evaluation_timestamp_seconds{model="$model"})',
                "since last evaluation",
            )
        )
        .unit(units.Seconds)
        .min(0)
        .color_scheme(palette())
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(8)
    )


#: Series of the selected model and version(s) (the model-quality metrics have no feature).
MODEL_VERSIONS = 'model="$model", model_version=~"$version"'


def performance() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Realised performance")
        .description(
            "Performance of the selected versions on their labelled predictions, per window "
            "of prediction time: accuracy, precision, recall, F1, log loss and ROC AUC of a "
            "classifier, MAE and RMSE of a regressor (labels.min_pairs pairs at least)."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "max by (model_version, metric) "
                f"(stream_drift_model_performance{{{MODEL_VERSIONS}}})",
                "{{metric}} ({{model_version}})",
            )
        )
        .decimals(3)
        .color_scheme(palette())
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(legend("lastNotNull", "min", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def concept_detections() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Concept-drift detections")
        .description(
            "Changes the concept-drift detector flagged in this model's error stream, per "
            "detector, over the last hour; each detection raises a concept_drift alert."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                "sum by (detector) (increase("
                'stream_drift_concept_drift_detections_total{model="$model"}[1h]))',
                "{{detector}}",
            )
        )
        .unit(units.Short)
        .decimals(0)
        .min(0)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(CRITICAL_COLOR))
        .fill_opacity(20)
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def domain_auc() -> timeseries.Panel:
    return dashed_thresholds(
        timeseries.Panel()
        .title("Domain classifier AUC vs threshold")
        .description(
            "ROC AUC of the classifier telling the selected versions' current rows from "
            "reference rows (0.5: indistinguishable), with the dashed threshold calibrated on "
            "reference-vs-reference splits; above it the features moved jointly."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f"max by (model_version) (stream_drift_domain_auc{{{MODEL_VERSIONS}}})",
                "AUC ({{model_version}})",
                "A",
            )
        )
        .with_target(
            promql(
                f"max by (model_version) (stream_drift_domain_auc_threshold{{{MODEL_VERSIONS}}})",
                "AUC ({{model_version}}) threshold",
                "B",
            )
        )
        .min(0.4)
        .max(1)
        .decimals(3)
        .color_scheme(palette())
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip())
        .height(8)
        .span(12)
    )


def label_join() -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title("Label join outcomes/s")
        .description(
            "Labels per second by join outcome: joined with their prediction, orphan_label "
            "(no prediction within labels.ttl_seconds), expired (a prediction whose label "
            "never came) or duplicate."
        )
        .datasource(DATASOURCE)
        .with_target(
            promql(
                f'sum by (outcome) (rate(stream_drift_label_join_total{{model="$model"}}{RATE}))',
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
    for outcome, color in (
        ("joined", OK_COLOR),
        ("expired", "orange"),
        ("orphan_label", "purple"),
        ("duplicate", "red"),
    ):
        panel.override_by_name(
            outcome, override_props(color={"mode": "fixed", "fixedColor": color})
        )
    return panel


def build() -> db.Dashboard:
    dashboard = base_dashboard(
        UID,
        "stream_drift / Model",
        "One model's drift statistics against their thresholds, alert states, window sizes, "
        "event intake and model quality.",
    ).annotation(
        db.AnnotationQuery()
        .name("Drift alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color(CRITICAL_COLOR)
        .expr(
            'ALERTS{alertname=~"StreamDrift(Warning|Critical|ConceptDrift|MultivariateDrift)", '
            'alertstate="firing", model="$model"}'
        )
    )
    for variable in variables():
        dashboard.with_variable(variable)
    dashboard.with_row(db.Row("Drift statistics"))
    for statistic in STATISTICS:
        dashboard.with_panel(statistic_panel(statistic))
    dashboard.with_panel(top_moving())
    dashboard.with_row(db.Row("Decision"))
    dashboard.with_panel(p_values()).with_panel(alert_state())
    dashboard.with_panel(alerts_raised()).with_panel(firing_alerts())
    dashboard.with_row(db.Row("Window and event intake"))
    dashboard.with_panel(window_samples()).with_panel(missing_ratio())
    dashboard.with_panel(events_by_outcome())
    dashboard.with_panel(late_events()).with_panel(watermark_lag())
    dashboard.with_panel(time_since_evaluation())
    dashboard.with_row(db.Row("Model quality"))
    dashboard.with_panel(performance()).with_panel(concept_detections())
    dashboard.with_panel(domain_auc()).with_panel(label_join())
    return dashboard
