"""Tests of stream_drift.config: loading, environment overrides, errors, round trips."""

from __future__ import annotations

import json
import pickle
import re
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from stream_drift.app.faust_config import faust_settings
from stream_drift.config import (
    ENV_PREFIX,
    KAFKA_RECORD_OVERHEAD,
    STATISTIC_NAMES,
    ConfigError,
    DecisionPolicy,
    Settings,
    WindowPolicy,
    load_settings,
)
from stream_drift.config.yaml_io import parse_yaml
from stream_drift.pipeline.deadletter import DEADLETTER_MIN_BYTES

EXAMPLE = Path(__file__).resolve().parents[1] / "stream-drift.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stream-drift.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    """The problem lines of the ConfigError that loading ``text`` must raise."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=env or {})
    assert str(info.value) == "\n".join(info.value.problems)
    return list(info.value.problems)


def leaf_paths(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[str]:
    """Dotted path of every settable value (mapping-valued keys count as one value)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from leaf_paths(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def get_path(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "__").upper()


# --- defaults and the example file -----------------------------------------------------------


def test_defaults_without_file() -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert s.app_id == "stream-drift"
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka.servers == ("127.0.0.1:9092",)
    assert not s.kafka.embedded
    assert s.topics.topic_specs() == {
        "events": ("drift.events", 4),
        "labels": ("drift.labels", 1),
        "partials": ("drift.partials", 4),
        "alerts": ("drift.alerts", 1),
        "results": ("drift.results", 1),
        "references": ("drift.references", 1),
        "deadletter": ("drift.deadletter", 1),
    }
    assert (s.window.kind, s.window.size_seconds, s.window.step_seconds) == ("time", 300, 60)
    assert s.decision.statistics == STATISTIC_NAMES == ("psi", "kl", "js", "ks", "chi2")
    assert s.decision.alert_on == ("psi",)
    assert s.decision.false_alarm_rate == 0.0005
    assert s.decision.thresholds == {}
    assert s.decision.min_effect == {"psi": 0.05}
    assert s.ingest.known_models == ()
    assert s.references.warmup_events == 0
    assert (s.web.host, s.web.port) == ("127.0.0.1", 6066)
    assert s.worker.log_level == "info"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STREAM_DRIFT_WEB__PORT", "7001")
    assert load_settings().web.port == 7001


def test_example_file_loads_and_equals_defaults() -> None:
    assert load_settings(EXAMPLE, env={}) == Settings()


def test_example_file_lists_every_key() -> None:
    # Any YAML reader sees the same values, and no key is left out.
    assert yaml.safe_load(EXAMPLE.read_text()) == Settings().model_dump(mode="json")


def test_empty_file_and_empty_sections_mean_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), env={}) == Settings()
    assert load_settings(write(tmp_path, "window:\nalerts:\n"), env={}) == Settings()


# --- YAML -------------------------------------------------------------------------------------


def test_yaml_overrides(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            """
            app_id: fraud-drift
            kafka:
              bootstrap_servers: k1:9092, k2:9093
            topics:
              partitions: {events: 12}
            window: {size_seconds: 600, step_seconds: 120}
            decision:
              statistics: [psi, ks]
              alert_on: [psi, ks]
              thresholds: {ks: 0.1}
              false_alarm_rate: 1e-4
            ingest: {known_models: [fraud, churn]}
            worker: {log_level: WARNING}
            """,
        ),
        env={},
    )
    assert s.app_id == "fraud-drift"
    assert s.kafka.servers == ("k1:9092", "k2:9093")
    assert s.topics.partitions.events == 12
    assert s.topics.partitions.partials == 4  # untouched keys keep their default
    assert (s.window.size_seconds, s.window.step_seconds) == (600, 120)
    assert s.decision.statistics == ("psi", "ks")
    assert s.decision.thresholds == {"ks": 0.1}
    assert s.decision.false_alarm_rate == 1e-4  # YAML 1.2: 1e-4 is a number
    assert s.ingest.known_models == ("fraud", "churn")
    assert s.worker.log_level == "warning"


def test_yaml_12_scalars(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            """
            ingest: {known_models: [no, on, yes, off, 2024-01-01]}
            worker: {data_dir: "10:30"}
            web: {host: off}
            """,
        ),
        env={},
    )
    assert s.ingest.known_models == ("no", "on", "yes", "off", "2024-01-01")
    assert s.web.host == "off"


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            """
            kafka: &fast {session_timeout_seconds: 6, heartbeat_interval_seconds: 1}
            window: {size_seconds: &size 600, step_seconds: *size}
            """,
        ),
        env={},
    )
    assert (s.kafka.session_timeout_seconds, s.window.step_seconds) == (6.0, 600)
    merged = parse_yaml("a: &b {x: 1, y: 2}\nc: {<<: *b, y: 3}\n")
    assert merged["c"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("window: [1,\n", r"stream-drift\.yaml, line 2, column 1: invalid YAML: "),
        ("web: {port: 1}\nweb: {port: 2}\n", r"stream-drift\.yaml, line 2.*duplicate key 'web'"),
        ("- 1\n- 2\n", r"stream-drift\.yaml: must hold a mapping of settings keys, got list"),
    ],
)
def test_unreadable_yaml(tmp_path: Path, text: str, expected: str) -> None:
    (line,) = problems(tmp_path, text)
    assert re.search(expected, line), line


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read configuration file"):
        load_settings(tmp_path / "nope.yaml", env={})


# --- environment ------------------------------------------------------------------------------


def test_env_overrides_beat_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        kafka: {bootstrap_servers: yaml-host:9092, session_timeout_seconds: 30}
        window: {size_seconds: 600, step_seconds: 120}
        decision: {alert_on: [psi], statistics: [psi, ks, kl]}
        topics: {create: true}
        web: {port: 7000}
        """,
    )
    env = {
        "STREAM_DRIFT_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",  # nested string
        "STREAM_DRIFT_KAFKA__SESSION_TIMEOUT_SECONDS": "6",  # number
        "STREAM_DRIFT_WINDOW__SIZE_SECONDS": "240",
        "STREAM_DRIFT_DECISION__ALERT_ON": '["psi", "ks"]',  # JSON list
        "STREAM_DRIFT_DECISION__STATISTICS": "psi, ks",  # comma-separated list
        "STREAM_DRIFT_TOPICS__CREATE": "false",  # bool
        "STREAM_DRIFT_DECISION__FALSE_ALARM_RATE": "null",
        "STREAM_DRIFT_DECISION__THRESHOLDS": "{ks: 0.1}",  # a mapping
        "STREAM_DRIFT_DECISION__THRESHOLDS__PSI": "0.25",  # plus one entry
        "STREAM_DRIFT_INGEST__KNOWN_MODELS": "",  # empty list
        "OTHER_VARIABLE": "ignored",
    }
    s = load_settings(path, env=env)
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert s.kafka.session_timeout_seconds == 6.0
    assert (s.window.size_seconds, s.window.step_seconds) == (240, 120)
    assert s.decision.alert_on == ("psi", "ks")
    assert s.decision.statistics == ("psi", "ks")
    assert s.topics.create is False
    assert s.decision.false_alarm_rate is None
    assert s.decision.thresholds == {"ks": 0.1, "psi": 0.25}
    assert s.ingest.known_models == ()
    assert s.web.port == 7000  # from YAML, no variable


def test_env_strings_are_verbatim() -> None:
    s = load_settings(
        env={
            "STREAM_DRIFT_APP_ID": "123",
            "STREAM_DRIFT_WORKER__DATA_DIR": "10:30",
            "STREAM_DRIFT_WEB__HOST": "yes",
            "STREAM_DRIFT_INGEST__KNOWN_MODELS": "1, true",
        }
    )
    assert (s.app_id, s.worker.data_dir, s.web.host) == ("123", "10:30", "yes")
    assert s.ingest.known_models == ("1", "true")


def test_env_whole_section_then_specific_key() -> None:
    s = load_settings(
        env={
            "STREAM_DRIFT_WINDOW": "{size_seconds: 900, step_seconds: 300}",
            "STREAM_DRIFT_WINDOW__STEP_SECONDS": "60",
        }
    )
    assert (s.window.size_seconds, s.window.step_seconds) == (900, 60)


@pytest.mark.parametrize("dotted", list(leaf_paths()))
def test_every_key_settable_from_env(dotted: str) -> None:
    value = get_path(Settings().model_dump(mode="json"), dotted)
    if isinstance(value, list):
        text = ",".join(value)
    elif isinstance(value, dict | bool) or value is None:
        text = json.dumps(value)
    else:
        text = str(value)
    assert load_settings(env={env_name(dotted): text}) == Settings()


def test_unknown_env_var_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            env={
                "STREAM_DRIFT_WINDOW__SISE_SECONDS": "300",
                "STREAM_DRIFT_KAFKA_BOOTSTRAP_SERVERS": "x:1",
                "STREAM_DRIFT_WEB__PORT__NUMBER": "1",
                "STREAM_DRIFT_NOTHING_LIKE_IT": "1",
                "STREAM_DRIFTER": "not our prefix",
            }
        )
    lines = info.value.problems
    assert len(lines) == 4
    by_name = {line.split(":")[0]: line for line in lines}
    assert by_name["STREAM_DRIFT_WINDOW__SISE_SECONDS"].endswith(
        "did you mean STREAM_DRIFT_WINDOW__SIZE_SECONDS?"
    )
    assert by_name["STREAM_DRIFT_KAFKA_BOOTSTRAP_SERVERS"].endswith(
        "did you mean STREAM_DRIFT_KAFKA__BOOTSTRAP_SERVERS?"
    )
    assert "'port' is a single value" in by_name["STREAM_DRIFT_WEB__PORT__NUMBER"]
    assert "did you mean" not in by_name["STREAM_DRIFT_NOTHING_LIKE_IT"]


def test_env_value_errors_name_key_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"STREAM_DRIFT_WEB__PORT": "true", "STREAM_DRIFT_WINDOW__KIND": "[1,"})
    assert info.value.problems == (
        "window.kind: must be one of 'time', 'count', got '[1,' (from STREAM_DRIFT_WINDOW__KIND)",
        "web.port: must be an integer >= 1 and <= 65535, got true (from STREAM_DRIFT_WEB__PORT)",
    )


def test_env_unparsable_list() -> None:
    with pytest.raises(ConfigError, match=r"^decision\.statistics: cannot parse '\[psi' .*"):
        load_settings(env={"STREAM_DRIFT_DECISION__STATISTICS": "[psi"})


# --- errors -----------------------------------------------------------------------------------


def test_misspelt_key_suggests_closest(tmp_path: Path) -> None:
    assert problems(tmp_path, "window:\n  sise_seconds: 300\n") == [
        "window.sise_seconds: unknown key; did you mean 'size_seconds'?"
    ]


def test_misplaced_key_suggests_its_section(tmp_path: Path) -> None:
    assert problems(tmp_path, "size_seconds: 300\n") == [
        "size_seconds: unknown key; did you mean 'window.size_seconds'?"
    ]


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path) -> None:
    assert problems(tmp_path, "web: {colour: blue}\n") == [
        "web.colour: unknown key; valid keys: host, port"
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("web: {port: 70000}", "web.port: must be an integer >= 1 and <= 65535, got 70000"),
        ("web: {port: '80'}", "web.port: must be an integer >= 1 and <= 65535, got '80'"),
        ("window: {size_seconds: true}", "window.size_seconds: must be an integer > 0, got true"),
        ("window: {size_seconds: 1.5}", "window.size_seconds: must be an integer > 0, got 1.5"),
        ("window: {kind: hourly}", "window.kind: must be one of 'time', 'count', got 'hourly'"),
        (
            "window: {allowed_lateness_seconds: -1}",
            "window.allowed_lateness_seconds: must be a number >= 0, got -1",
        ),
        (
            "decision: {false_alarm_rate: 1.5}",
            "decision.false_alarm_rate: must be a number > 0 and < 1, or null, got 1.5",
        ),
        (
            "decision: {false_alarm_rate: .nan}",
            "decision.false_alarm_rate: must be a number > 0 and < 1, or null, got nan",
        ),
        ("decision: {min_samples: 0}", "decision.min_samples: must be an integer > 0, got 0"),
        (
            "decision: {statistics: [psi, mmd]}",
            "decision.statistics[1]: must be one of 'psi', 'kl', 'js', 'ks', 'chi2', got 'mmd'",
        ),
        (
            "decision: {statistics: [psi, psi]}",
            "decision.statistics: must be a list of distinct statistics from "
            "'psi', 'kl', 'js', 'ks', 'chi2', got [\"psi\", \"psi\"]",
        ),
        (
            "decision: {thresholds: {mmd: 1}}",
            "decision.thresholds: every key must be one of "
            "'psi', 'kl', 'js', 'ks', 'chi2', got 'mmd'",
        ),
        (
            "decision: {thresholds: {psi: 0}}",
            "decision.thresholds.psi: must be a number > 0, got 0",
        ),
        ("decision: {correction: bonferroni}", "decision.correction: must be one of 'bh', "),
        ("alerts: {resolve_ratio: 0}", "alerts.resolve_ratio: must be a number > 0 and <= 1"),
        ("alerts: {runbook_base_url: 5}", "alerts.runbook_base_url: must be a string, got 5"),
        (
            "alerts: {runbook_base_url: docs/runbook.md}",
            "alerts.runbook_base_url: must be an http(s) URL or empty, got 'docs/runbook.md'",
        ),
        (
            "alerts: {runbook_base_url: 'https://wiki.example.org/runbook#top'}",
            "alerts.runbook_base_url: must not contain '#'",
        ),
        (
            "kafka: {bootstrap_servers: 'kafka://a:9092'}",
            "kafka.bootstrap_servers: must be 'embedded' or comma-separated host:port pairs",
        ),
        ("kafka: {bootstrap_servers: 'a:99999'}", "kafka.bootstrap_servers: must be 'embedded'"),
        ("app_id: my app", "app_id: must be a Kafka name: 1 to 249 characters"),
        ("topics: {partitions: {events: 0}}", "topics.partitions.events: must be an integer > 0"),
        (
            "ingest: {known_models: fraud}",
            "ingest.known_models: must be a list, each item a non-empty string, got 'fraud'",
        ),
        ("references: {files: ['']}", "references.files[0]: must be a non-empty string, got ''"),
        ("worker: {log_level: loud}", "worker.log_level: must be one of 'debug', 'info'"),
        ("metrics: 5", "metrics: must be a mapping of keys max_series, got 5"),
    ],
)
def test_type_and_range_errors_name_key_and_expectation(
    tmp_path: Path, text: str, line: str
) -> None:
    (got,) = problems(tmp_path, text + "\n")
    assert got.startswith(line), got


def test_step_larger_than_size(tmp_path: Path) -> None:
    assert problems(tmp_path, "window: {step_seconds: 600}") == [
        "window.step_seconds: must be > 0 and <= window.size_seconds (300), got 600"
    ]


def test_size_not_a_multiple_of_step(tmp_path: Path) -> None:
    assert problems(tmp_path, "window: {size_seconds: 330}") == [
        "window.size_seconds: must be a whole multiple of window.step_seconds (60), got 330"
    ]
    assert problems(tmp_path, "window: {count_size: 1100}") == [
        "window.count_size: must be a whole multiple of window.count_step (250), got 1100"
    ]


def test_tumbling_window_is_valid() -> None:
    assert WindowPolicy(size_seconds=120, step_seconds=120).step_seconds == 120


def test_alert_on_must_be_subset_of_statistics(tmp_path: Path) -> None:
    assert problems(tmp_path, "decision: {statistics: [psi, ks], alert_on: [psi, kl, js]}") == [
        "decision.alert_on: every item must be one of decision.statistics ('psi', 'ks'), "
        "got 'kl', 'js'"
    ]


def test_fixed_thresholds_required_without_false_alarm_rate(tmp_path: Path) -> None:
    assert problems(tmp_path, "decision: {false_alarm_rate: null, thresholds: {psi: 0.2}}") == [
        "decision.thresholds: must give a fixed threshold for every statistic when "
        "decision.false_alarm_rate is null, missing 'kl', 'js', 'ks', 'chi2'"
    ]
    d = DecisionPolicy(false_alarm_rate=None, statistics=("psi",), thresholds={"psi": 0.2})
    assert d.false_alarm_rate is None


def test_other_cross_key_checks(tmp_path: Path) -> None:
    assert problems(tmp_path, "decision: {fine_bins: 105}") == [
        "decision.fine_bins: must be a whole multiple of decision.psi_bins (10), got 105"
    ]
    assert problems(tmp_path, "kafka: {session_timeout_seconds: 3}") == [
        "kafka.heartbeat_interval_seconds: must be < kafka.session_timeout_seconds (3), got 3"
    ]
    assert problems(tmp_path, "topics: {labels: drift.events}") == [
        "topics.labels: must differ from topics.events, got 'drift.events' for both"
    ]


def test_producer_and_deadletter_limits() -> None:
    s = Settings()
    assert s.kafka.producer_max_request_bytes == 1_048_576
    assert s.ingest.deadletter_max_bytes == 900_000
    # The producer limit is configured, not Faust's default (1,000,000).
    assert faust_settings(s)["producer_max_request_size"] == 1_048_576
    edge = 1_048_576 - KAFKA_RECORD_OVERHEAD
    assert Settings().override({"ingest.deadletter_max_bytes": edge}).ingest.deadletter_max_bytes
    assert Settings().override({"ingest.deadletter_max_bytes": DEADLETTER_MIN_BYTES})


def test_deadletter_budget_must_fit_the_producer_limit(tmp_path: Path) -> None:
    expected = (
        "ingest.deadletter_max_bytes: must be <= kafka.producer_max_request_bytes (500000) "
        "minus 512 bytes of Kafka record framing (499488), got 900000; lower it or raise "
        "kafka.producer_max_request_bytes"
    )
    assert problems(tmp_path, "kafka: {producer_max_request_bytes: 500000}") == [expected]
    with pytest.raises(ConfigError) as err:
        load_settings(env={"STREAM_DRIFT_INGEST__DEADLETTER_MAX_BYTES": "1048065"})
    assert err.value.problems == (
        "ingest.deadletter_max_bytes: must be <= kafka.producer_max_request_bytes (1048576) "
        "minus 512 bytes of Kafka record framing (1048064), got 1048065; lower it or raise "
        "kafka.producer_max_request_bytes (from STREAM_DRIFT_INGEST__DEADLETTER_MAX_BYTES)",
    )
    assert problems(tmp_path, "ingest: {deadletter_max_bytes: 1000}") == [
        "ingest.deadletter_max_bytes: must be an integer >= 16384, got 1000"
    ]
    # Raising both together is fine.
    s = load_settings(
        write(
            tmp_path,
            "kafka: {producer_max_request_bytes: 8388608}\n"
            "ingest: {deadletter_max_bytes: 8000000}\n",
        ),
        env={},
    )
    assert faust_settings(s)["producer_max_request_size"] == 8_388_608


def test_several_errors_reported_at_once(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """
        window: {sise_seconds: 300}
        decision: {statistics: [psi], alert_on: [ks]}
        web: {port: 0}
        alerts: {fire_after: -1}
        """,
        env={"STREAM_DRIFT_NOPE": "1", "STREAM_DRIFT_METRICS__MAX_SERIES": "many"},
    )
    assert len(lines) == 6
    for line in lines:
        assert re.match(r"^[A-Za-z_][\w.\[\]]*: \S", line), line
    keys = [line.split(":")[0] for line in lines]
    assert keys == [
        "STREAM_DRIFT_NOPE",
        "window.sise_seconds",
        "decision.alert_on",
        "alerts.fire_after",
        "web.port",
        "metrics.max_series",
    ]
    assert lines[-1].endswith("(from STREAM_DRIFT_METRICS__MAX_SERIES)")


def test_config_error_is_a_value_error_and_pickles() -> None:
    err = ConfigError(["a.b: bad", "c: worse"])
    assert isinstance(err, ValueError)
    assert str(err) == "a.b: bad\nc: worse"
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == err.problems


# --- the Settings object ----------------------------------------------------------------------


def test_settings_are_frozen() -> None:
    web: Any = Settings().web
    with pytest.raises(ValidationError):
        web.port = 1


def test_override() -> None:
    s = Settings()
    t = s.override({"web.port": 7000, "decision.alert_on": ["psi", "ks"]})
    assert (t.web.port, t.decision.alert_on) == (7000, ("psi", "ks"))
    assert s.web.port == 6066
    with pytest.raises(ConfigError) as info:
        s.override({"web.prot": 1, "window.step_seconds": 7})
    assert info.value.problems == (
        "web.prot: unknown key 'prot' in web; did you mean 'port'?",
        "window.size_seconds: must be a whole multiple of window.step_seconds (7), got 300",
    )


def test_to_yaml_round_trip_of_defaults(tmp_path: Path) -> None:
    text = Settings().to_yaml()
    expected = Settings().model_dump(mode="json")
    del expected["kafka"]["sasl_password"]  # a secret is never written out
    assert yaml.safe_load(text) == expected
    assert load_settings(write(tmp_path, text), env={}) == Settings()


@settings(max_examples=60, deadline=None)
@given(
    step=st.integers(1, 3600),
    multiple=st.integers(1, 48),
    rate=st.floats(1e-12, 0.999) | st.none(),
    ratio=st.floats(1e-6, 1.0),
    cooldown=st.floats(0, 1e7),
    port=st.integers(1, 65535),
    psi=st.floats(1e-9, 1e3),
    runbook=st.just("")
    | st.from_regex(r"https?://[a-z0-9.]{1,20}(/[A-Za-z0-9._~-]{0,20})*", fullmatch=True),
    models=st.lists(st.text(min_size=1, max_size=10), max_size=4),
)
def test_to_yaml_round_trips(
    step: int,
    multiple: int,
    rate: float | None,
    ratio: float,
    cooldown: float,
    port: int,
    psi: float,
    runbook: str,
    models: list[str],
) -> None:
    s = Settings().override(
        {
            "window.step_seconds": step,
            "window.size_seconds": step * multiple,
            "decision.false_alarm_rate": rate,
            "decision.thresholds": {s: psi for s in STATISTIC_NAMES},
            "alerts.resolve_ratio": ratio,
            "alerts.cooldown_seconds": cooldown,
            "web.port": port,
            "alerts.runbook_base_url": runbook,
            "ingest.known_models": models,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.yaml"
        path.write_text(s.to_yaml(), encoding="utf-8")
        assert load_settings(path, env={}) == s


def test_faust_settings() -> None:
    s = load_settings(
        env={
            "STREAM_DRIFT_APP_ID": "drift-test",
            "STREAM_DRIFT_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092,[::1]:19093",
            "STREAM_DRIFT_KAFKA__SESSION_TIMEOUT_SECONDS": "6",
            "STREAM_DRIFT_KAFKA__HEARTBEAT_INTERVAL_SECONDS": "1",
            "STREAM_DRIFT_KAFKA__REBALANCE_TIMEOUT_SECONDS": "6",
            "STREAM_DRIFT_KAFKA__PRODUCER_MAX_BATCH_SIZE": "1",
            "STREAM_DRIFT_KAFKA__PRODUCER_MAX_REQUEST_BYTES": "4194304",
            "STREAM_DRIFT_TOPICS__PARTITIONS__PARTIALS": "8",
            "STREAM_DRIFT_WEB__PORT": "16066",
            "STREAM_DRIFT_WORKER__DATA_DIR": "/var/lib/drift",
        }
    )
    assert faust_settings(s) == {
        "broker_credentials": None,
        "id": "drift-test",
        "broker": "kafka://127.0.0.1:19092,[::1]:19093",
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 6.0,
        "producer_max_batch_size": 1,
        "producer_max_request_size": 4194304,
        "web_host": "127.0.0.1",
        "web_port": 16066,
        "store": "memory://",
        "topic_partitions": 8,
        "topic_replication_factor": 1,
        "datadir": "/var/lib/drift",
    }


def test_faust_settings_refuses_embedded() -> None:
    s = load_settings(env={"STREAM_DRIFT_KAFKA__BOOTSTRAP_SERVERS": "embedded"})
    assert s.kafka.embedded and s.kafka.servers == ()
    with pytest.raises(ConfigError, match=r"^kafka\.bootstrap_servers: is 'embedded'"):
        faust_settings(s)
    address = s.override({"kafka.bootstrap_servers": "127.0.0.1:40123"})
    assert faust_settings(address)["broker"] == "kafka://127.0.0.1:40123"


def test_loading_settings_does_not_import_faust() -> None:
    """Loading, writing and securing settings never needs Faust, mode or aiokafka (no module
    of ``stream_drift.config`` imports them: ``test_layering``; Faust's credentials are built
    in ``stream_drift.app.faust_config``)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom stream_drift.config import Settings, load_settings\n"
        "s = load_settings(env={})\ns.to_yaml(); s.kafka.client_kwargs()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'mode', 'aiokafka')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


# --- data quality (issue 7) ------------------------------------------------------------------


def test_data_quality_alerts_are_on_by_default_beside_alert_on() -> None:
    d = Settings().decision
    assert (d.quality_alerts, d.quality_min_effect) == (True, 0.05)
    assert d.alert_on == ("psi",)  # alert_on keeps naming the drift statistics only
    assert d.deciding == ("psi", "missing_rate", "mismatch_rate")
    off = load_settings(env={"STREAM_DRIFT_DECISION__QUALITY_ALERTS": "false"}).decision
    assert off.deciding == ("psi",)
    both = Settings().override({"decision.alert_on": ["psi", "ks"]}).decision
    assert both.deciding == ("psi", "ks", "missing_rate", "mismatch_rate")
    from stream_drift.stats import QUALITY_STATISTICS

    assert set(d.deciding) - set(d.alert_on) == QUALITY_STATISTICS


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "decision: {quality_min_effect: 1.0}",
            "decision.quality_min_effect: must be a number >= 0 and < 1, got 1.0",
        ),
        (
            "decision: {quality_min_effect: -0.01}",
            "decision.quality_min_effect: must be a number >= 0 and < 1",
        ),
        ("decision: {quality_alerts: maybe}", "decision.quality_alerts: must be true or false"),
        ("decision: {quality_alert: true}", "decision.quality_alert: unknown key"),
    ],
)
def test_data_quality_keys_are_validated(tmp_path: Path, text: str, line: str) -> None:
    (got,) = problems(tmp_path, text + "\n")
    assert got.startswith(line), got


def test_the_decision_policy_builds_the_quality_statistics() -> None:
    from stream_drift.stats import MismatchRate, MissingRate

    stats = Settings().override({"decision.quality_min_effect": 0.1}).decision.statistic_objects
    quality = [s for s in stats if isinstance(s, MissingRate | MismatchRate)]
    assert [s.name for s in quality] == ["missing_rate", "mismatch_rate"]
    assert all(
        (s.false_alarm_rate, s.min_effect, s.min_samples, s.threshold) == (0.0005, 0.1, 100, None)
        for s in quality
    )
    # With no false-alarm rate, the floor above the reference's rate is the whole threshold.
    fixed = Settings().override(
        {
            "decision.false_alarm_rate": None,
            "decision.thresholds": {s: 0.2 for s in STATISTIC_NAMES},
        }
    )
    for s in fixed.decision.statistic_objects[-2:]:
        assert (s.threshold, s.false_alarm_rate) == (0.0, None)
        assert s.threshold_for(1000, 500, 1) == 0.05
    assert fixed.decision.deciding == ("psi", "missing_rate", "mismatch_rate")
    # Built once: every model's evaluator shares the statistics (and their threshold caches).
    assert fixed.decision.statistic_objects is fixed.decision.statistic_objects


def test_the_statistic_names_are_the_drift_statistics_of_the_stats_package() -> None:
    from stream_drift.stats import QUALITY_STATISTICS, STATISTICS

    drift = tuple(n for n in STATISTICS if n not in QUALITY_STATISTICS)
    assert drift == STATISTIC_NAMES


def test_the_policies_are_the_settings_sections() -> None:
    """One definition per setting: the core runs with the sections themselves."""
    from stream_drift.config import AlertPolicy
    from stream_drift.pipeline.evaluator import ModelEvaluator
    from stream_drift.pipeline.registry import ReferenceRegistry

    s = Settings()
    assert (type(s.window), type(s.decision), type(s.alerts)) == (
        WindowPolicy,
        DecisionPolicy,
        AlertPolicy,
    )
    ev = ModelEvaluator("m", ReferenceRegistry(), s.window, s.decision, s.alerts)
    assert ev.window_policy is s.window and ev.tracker.policy is s.alerts


def test_an_empty_runbook_base_url_reaches_the_alerts(tmp_path: Path) -> None:
    """``alerts.runbook_base_url: ""`` means no link, also when it clears the file's URL from
    the environment: the alerts of the worker's evaluator carry ``runbook_url: ""``."""
    from stream_drift.app.runtime import Runtime
    from stream_drift.pipeline.alerts import AlertTracker
    from stream_drift.stats.result import DriftResult, Severity

    path = write(tmp_path, "alerts: {runbook_base_url: 'https://wiki.example.org/rb'}\n")
    for s in (
        load_settings(path, env={"STREAM_DRIFT_ALERTS__RUNBOOK_BASE_URL": ""}),
        load_settings(write(tmp_path, "alerts: {runbook_base_url: ''}\n"), env={}),
        load_settings(env={}),
    ):
        runtime = Runtime(s.override({"alerts.fire_after": 1}))
        assert runtime.alerts.runbook_base_url == ""
        tracker = AlertTracker(runtime.alerts)
        drift = DriftResult("psi", 0.31, 0.2, 1e-9, True, Severity.CRITICAL, 100_000, 5231)
        alert = tracker.observe(
            model="m",
            model_version="1",
            feature="x",
            result=drift,
            window_start=0.0,
            window_end=60.0,
            evaluated_at=61.0,
            reference_id="r",
        )
        assert alert is not None and alert.runbook_url == ""
