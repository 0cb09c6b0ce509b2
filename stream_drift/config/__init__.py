"""Settings: one YAML file, overridable key by key from ``STREAM_DRIFT_*`` environment variables.

Loading happens in three steps, all in :func:`load_settings`:

1. the YAML file (if any) is read into a plain dict;
2. every ``STREAM_DRIFT_*`` environment variable is laid over that dict. The part after the
   prefix is the dotted key path with ``__`` between levels, case-insensitive:
   ``STREAM_DRIFT_WINDOW__SIZE_SECONDS=600`` sets ``window.size_seconds``,
   ``STREAM_DRIFT_DECISION__THRESHOLDS__PSI=0.25`` sets one entry of a mapping;
3. the result is validated by strict, frozen pydantic models.

Every problem found on the way (unknown key, unknown variable, wrong type, value out of range,
inconsistent keys) is collected and reported at once in a :class:`ConfigError`, one problem per
line, each line starting with the dotted key (or the variable's name) it is about.

YAML is read with YAML 1.2 scalar rules, not PyYAML's 1.1 defaults: only ``true``/``false``
are booleans (``on``, ``no``, ``yes`` stay strings), ``1e-3`` is a number, dates and
sexagesimal numbers (``10:30``) are strings, and a duplicate key is an error.

Examples
--------
>>> s = load_settings(env={"STREAM_DRIFT_WINDOW__SIZE_SECONDS": "600"})
>>> s.window.size_seconds, s.window.step_seconds
(600, 60)
>>> try:
...     load_settings(env={"STREAM_DRIFT_WINDOW__STEP_SECONDS": "600"})
... except ConfigError as exc:
...     print(exc)
window.step_seconds: must be > 0 and <= window.size_seconds (300), got 600 \
(from STREAM_DRIFT_WINDOW__STEP_SECONDS)
"""

from __future__ import annotations

import difflib
import json
import os
import re
import ssl
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeGuard, get_args, get_origin

import yaml
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from stream_drift.pipeline.alerts import check_runbook_base_url
from stream_drift.pipeline.events import DEADLETTER_MIN_BYTES

__all__ = [
    "ENV_PREFIX",
    "STATISTICS",
    "AlertsSettings",
    "ConfigError",
    "DecisionSettings",
    "IngestSettings",
    "KafkaSettings",
    "MetricsSettings",
    "PartitionsSettings",
    "ReferencesSettings",
    "Settings",
    "Statistic",
    "TopicsSettings",
    "WebSettings",
    "WindowSettings",
    "WorkerSettings",
    "load_settings",
]

ENV_PREFIX = "STREAM_DRIFT_"
"""Prefix of the environment variables that override settings; ``__`` separates levels."""

Statistic = Literal["psi", "kl", "js", "ks", "chi2"]
STATISTICS: tuple[Statistic, ...] = get_args(Statistic)
"""Every statistic the evaluator knows, in the order results are reported."""

_EMBEDDED = "embedded"

KAFKA_RECORD_OVERHEAD = 512
"""Bytes a record batch adds around one record's key and value (61 of batch header, ~20 of
record header; the rest is headroom): ``ingest.deadletter_max_bytes`` may use the rest of
``kafka.producer_max_request_bytes``."""


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """Invalid configuration; ``str(error)`` lists every problem, one per line.

    Each line reads ``key.path: problem`` (or ``STREAM_DRIFT_NAME: problem`` for an unknown
    environment variable, ``file: problem`` when the file itself cannot be read).

    Parameters
    ----------
    problems
        The problems, one string each, or a single string with one problem per line.

    Examples
    --------
    >>> err = ConfigError(["web.port: must be ...", "window.kind: must be ..."])
    >>> err.problems
    ('web.port: must be ...', 'window.kind: must be ...')
    >>> isinstance(err, ValueError), str(err).count("\\n")
    (True, 1)
    """

    def __init__(self, problems: str | Iterable[str]) -> None:
        if isinstance(problems, str):
            problems = problems.splitlines()
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


class _Expected:
    """Annotation marker: the human description of what a value must be, used in errors."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# --------------------------------------------------------------------------------------------
# field types
# --------------------------------------------------------------------------------------------

_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SERVER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")


def _check_kafka_name(value: str) -> str:
    if not _KAFKA_NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError("not a valid Kafka name")
    return value


def _check_servers(value: str) -> str:
    if value == _EMBEDDED:
        return value
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        match = _SERVER.fullmatch(entry)
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            raise ValueError(f"invalid server {entry!r}")
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _check_distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("duplicate items")
    return values


Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
NonEmptyStr = Annotated[str, Strict(), MinLen(1)]
PositiveInt = Annotated[int, Strict(), Gt(0)]
NonNegativeInt = Annotated[int, Strict(), Ge(0)]
PositiveFloat = Annotated[float, Strict(), AllowInfNan(False), Gt(0)]
NonNegativeFloat = Annotated[float, Strict(), AllowInfNan(False), Ge(0)]
KafkaName = Annotated[
    str,
    Strict(),
    AfterValidator(_check_kafka_name),
    _Expected("a Kafka name: 1 to 249 characters from A-Z a-z 0-9 . _ -"),
]
StatisticList = Annotated[
    tuple[Statistic, ...],
    AfterValidator(_check_distinct),
    _Expected("a list of distinct statistics from " + ", ".join(map(repr, STATISTICS))),
]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"],
    BeforeValidator(_lower),
]


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


SecurityProtocol = Annotated[
    Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], BeforeValidator(_upper)
]
SaslMechanism = Annotated[
    Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], BeforeValidator(_upper)
]
Secret = Annotated[SecretStr, Strict(), _Expected("a string")]
"""A string that is never shown: not by ``repr``, :meth:`Settings.to_yaml` or an error."""


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

# Dotted path of every section class inside Settings, filled in once Settings is defined.
_SECTION_PATH: dict[type[BaseModel], str] = {}


class _Section(BaseModel):
    """Base of every settings model: strict (unknown keys are errors), immutable.

    A section left empty in YAML (``window:`` with nothing under it) means all defaults.
    Cross-key checks go in :meth:`_problems`; every problem found is reported, not only the
    first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_sections_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                key: {} if value is None and _is_section_key(cls, key) else value
                for key, value in data.items()
            }
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        problems = self._problems()
        if problems:
            raise PydanticCustomError(
                "config_problems",
                "{summary}",
                {"summary": "; ".join(f"{k}: {m}" for k, m in problems), "problems": problems},
            )
        return self

    def _problems(self) -> list[tuple[str, str]]:
        """Cross-key problems as ``(dotted key, message)`` pairs; none by default."""
        return []

    def _key(self, name: str) -> str:
        """Dotted path of this section's field ``name``, e.g. ``window.size_seconds``."""
        prefix = _SECTION_PATH.get(type(self), "")
        return f"{prefix}.{name}" if prefix else name


def _is_section_key(cls: type[BaseModel], key: object) -> bool:
    field = cls.model_fields.get(key) if isinstance(key, str) else None
    return field is not None and _is_model(field.annotation)


def _is_model(tp: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


class KafkaSettings(_Section):
    """Connection to the Kafka cluster and the client timeouts.

    Examples
    --------
    >>> KafkaSettings(bootstrap_servers="k1:9092, k2:9092").servers
    ('k1:9092', 'k2:9092')
    >>> KafkaSettings(bootstrap_servers="embedded").embedded
    True
    """

    bootstrap_servers: Annotated[
        str,
        Strict(),
        AfterValidator(_check_servers),
        _Expected("'embedded' or comma-separated host:port pairs (port 1-65535, no scheme)"),
    ] = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list; 'embedded' starts the embedded broker.",
    )
    session_timeout_seconds: PositiveFloat = Field(
        default=60.0, description="Group session timeout."
    )
    heartbeat_interval_seconds: PositiveFloat = Field(default=3.0, description="Group heartbeat.")
    rebalance_timeout_seconds: PositiveFloat = Field(
        default=60.0, description="Group rebalance timeout."
    )
    producer_max_batch_size: PositiveInt = Field(
        default=16384, description="Producer batch size, bytes."
    )
    consumer_max_records: PositiveInt = Field(default=10000, description="Max records per fetch.")
    producer_max_request_bytes: PositiveInt = Field(
        default=1048576,
        description="Largest record (key, value and framing) the worker's producer sends, bytes.",
    )
    connect_timeout_seconds: PositiveFloat = Field(
        default=10.0, description="How long a client command waits to reach the brokers."
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)."
    )
    sasl_username: NonEmptyStr | None = Field(default=None, description="SASL user name.")
    sasl_password: Secret | None = Field(
        default=None,
        description="SASL password; never written by to_yaml, shown or logged. "
        "Best set with STREAM_DRIFT_KAFKA__SASL_PASSWORD.",
    )
    ssl_cafile: NonEmptyStr | None = Field(
        default=None, description="PEM CA bundle to verify the brokers (default: system CAs)."
    )
    ssl_certfile: NonEmptyStr | None = Field(
        default=None, description="PEM client certificate (mutual TLS)."
    )
    ssl_keyfile: NonEmptyStr | None = Field(
        default=None, description="PEM private key of ssl_certfile, if not in that file."
    )

    @property
    def uses_sasl(self) -> bool:
        """``True`` for ``SASL_PLAINTEXT`` and ``SASL_SSL``."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_ssl(self) -> bool:
        """``True`` for ``SSL`` and ``SASL_SSL`` (TLS to the brokers)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context verifying the brokers (``ssl_cafile`` or the system CAs, host names
        checked), with the client certificate when ``ssl_certfile`` is set.

        Raises
        ------
        ConfigError
            A file that cannot be read as PEM, naming its key.
        """
        key = "ssl_cafile"
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile is not None:
                key = "ssl_certfile" if self.ssl_keyfile is None else "ssl_certfile/ssl_keyfile"
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            names = " / ".join(self._key(k) for k in key.split("/"))
            raise ConfigError([f"{names}: cannot be loaded as PEM: {reason}"]) from None
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Security keyword arguments for every aiokafka client (producer, consumer, admin).

        Every Kafka client of the project is built with ``**settings.kafka.client_kwargs()``
        (the Faust app gets the same through :meth:`Settings.faust_settings`), so one setting
        secures all of them. The dict holds the SASL password: never log it.

        Raises
        ------
        ConfigError
            When a TLS file cannot be loaded (see :meth:`ssl_context`).

        Examples
        --------
        >>> KafkaSettings().client_kwargs()
        {'security_protocol': 'PLAINTEXT'}
        >>> kw = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
        ...                    sasl_username="drift", sasl_password="s3cret").client_kwargs()
        >>> kw["security_protocol"], kw["sasl_mechanism"], kw["sasl_plain_username"]
        ('SASL_PLAINTEXT', 'SCRAM-SHA-512', 'drift')
        """
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password
            kwargs["sasl_plain_password"] = (
                None if password is None else password.get_secret_value()
            )
        return kwargs

    @property
    def embedded(self) -> bool:
        """``True`` when the embedded broker is to be started instead of connecting."""
        return self.bootstrap_servers == _EMBEDDED

    @property
    def servers(self) -> tuple[str, ...]:
        """The ``host:port`` entries of :attr:`bootstrap_servers` (empty when embedded)."""
        if self.embedded:
            return ()
        return tuple(entry.strip() for entry in self.bootstrap_servers.split(","))

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        if self.heartbeat_interval_seconds >= self.session_timeout_seconds:
            problems.append(
                (
                    self._key("heartbeat_interval_seconds"),
                    f"must be < {self._key('session_timeout_seconds')} "
                    f"({self.session_timeout_seconds:g}), got {self.heartbeat_interval_seconds:g}",
                )
            )
        return problems + self._security_problems()

    def _security_problems(self) -> list[tuple[str, str]]:
        protocol = self.security_protocol
        given = f"{self._key('security_protocol')} is {protocol}"
        problems = []
        if self.embedded and protocol != "PLAINTEXT":
            problems.append(
                (
                    self._key("security_protocol"),
                    f"must be PLAINTEXT for the embedded broker, got {protocol}",
                )
            )
        sasl = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password": self.sasl_password,
        }
        for name, value in sasl.items():
            if self.uses_sasl and (value is None or value == SecretStr("")):
                hint = {
                    "sasl_mechanism": "; one of 'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'",
                    "sasl_password": "; set it with STREAM_DRIFT_KAFKA__SASL_PASSWORD",
                }.get(name, "")
                problems.append((self._key(name), f"required when {given}{hint}"))
            elif not self.uses_sasl and value is not None:
                problems.append(
                    (
                        self._key(name),
                        f"is only used with SASL_PLAINTEXT or SASL_SSL, but {given}",
                    )
                )
        files = {
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        for name, path in files.items():
            if path is None:
                continue
            if not self.uses_ssl:
                problems.append(
                    (self._key(name), f"is only used with SSL or SASL_SSL, but {given}")
                )
            elif not Path(path).exists():
                problems.append((self._key(name), f"file not found: {path!r}"))
            elif not Path(path).is_file() or not os.access(path, os.R_OK):
                problems.append((self._key(name), f"not a readable file: {path!r}"))
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            problems.append(
                (
                    self._key("ssl_keyfile"),
                    f"needs {self._key('ssl_certfile')} (the certificate of this key)",
                )
            )
        return problems


class PartitionsSettings(_Section):
    """Partition count of each topic, by role (same keys as :class:`TopicsSettings`)."""

    events: PositiveInt = 4
    labels: PositiveInt = 1
    partials: PositiveInt = 4
    alerts: PositiveInt = 1
    results: PositiveInt = 1
    references: PositiveInt = 1
    deadletter: PositiveInt = 1


_TOPIC_ROLES = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")

RetentionMs = Annotated[int, Strict(), Ge(-1), _Expected("an integer >= -1 (-1: forever)")]
CleanupPolicy = Literal["delete", "compact", "compact,delete"]

_DAY_MS = 86_400_000


class RetentionSettings(_Section):
    """``retention.ms`` of each topic the worker creates, by role; ``-1`` keeps records forever,
    ``null`` leaves the broker's default (``log.retention.ms``). Applied at creation only."""

    events: RetentionMs | None = None
    labels: RetentionMs | None = None
    partials: RetentionMs | None = None
    alerts: RetentionMs | None = Field(default=-1, description="Audit trail: kept forever.")
    results: RetentionMs | None = Field(default=-1, description="Audit trail: kept forever.")
    references: RetentionMs | None = Field(default=-1, description="Every profile published.")
    deadletter: RetentionMs | None = Field(
        default=7 * _DAY_MS, description="Raw rejected input: as long as Kafka keeps input."
    )


class CleanupPolicySettings(_Section):
    """``cleanup.policy`` of each topic the worker creates, by role. Applied at creation only."""

    events: CleanupPolicy = "delete"
    labels: CleanupPolicy = "delete"
    partials: CleanupPolicy = "delete"
    alerts: CleanupPolicy = "delete"
    results: CleanupPolicy = "delete"
    references: CleanupPolicy = "compact"
    deadletter: CleanupPolicy = "delete"


class TopicsSettings(_Section):
    """Topic names by role, their partition counts and replication factor.

    Examples
    --------
    >>> TopicsSettings().topic_specs()["partials"]
    ('drift.partials', 4)
    """

    events: KafkaName = Field(default="drift.events", description="Input events.")
    labels: KafkaName = Field(default="drift.labels", description="Delayed ground-truth labels.")
    partials: KafkaName = Field(default="drift.partials", description="Stage-1 partial histograms.")
    alerts: KafkaName = Field(default="drift.alerts", description="Alert state changes.")
    results: KafkaName = Field(
        default="drift.results", description="Every evaluation (audit trail)."
    )
    references: KafkaName = Field(default="drift.references", description="Reference profiles.")
    deadletter: KafkaName = Field(default="drift.deadletter", description="Rejected input.")
    partitions: PartitionsSettings = PartitionsSettings()
    replication_factor: PositiveInt = Field(default=1, description="Replication of created topics.")
    create: Bool = Field(default=True, description="Create missing topics at start-up.")
    retention_ms: RetentionSettings = RetentionSettings()
    cleanup_policy: CleanupPolicySettings = CleanupPolicySettings()

    def topic_specs(self) -> dict[str, tuple[str, int]]:
        """``{role: (topic name, partitions)}`` for every topic role."""
        return {
            role: (getattr(self, role), getattr(self.partitions, role)) for role in _TOPIC_ROLES
        }

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """``{topic name: {config: value}}``: the configs every topic is created with.

        Returns
        -------
        dict[str, dict[str, str]]
            ``cleanup.policy`` for every topic, ``retention.ms`` unless it is ``null``
            (broker default).

        Examples
        --------
        >>> TopicsSettings().topic_configs()["drift.results"]
        {'cleanup.policy': 'delete', 'retention.ms': '-1'}
        >>> TopicsSettings().topic_configs()["drift.events"]
        {'cleanup.policy': 'delete'}
        """
        configs: dict[str, dict[str, str]] = {}
        for role in _TOPIC_ROLES:
            config = {"cleanup.policy": getattr(self.cleanup_policy, role)}
            retention = getattr(self.retention_ms, role)
            if retention is not None:
                config["retention.ms"] = str(retention)
            configs[getattr(self, role)] = config
        return configs

    def _problems(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        problems = []
        retention = self.retention_ms.references
        if "compact" not in self.cleanup_policy.references and retention not in (None, -1):
            problems.append(
                (
                    self._key("cleanup_policy.references"),
                    f"'delete' with {self._key('retention_ms.references')} {retention} would "
                    "delete reference profiles the workers need: use 'compact' or retention -1",
                )
            )
        for role in _TOPIC_ROLES:
            name = getattr(self, role)
            if name in seen:
                problems.append(
                    (
                        self._key(role),
                        f"must differ from {self._key(seen[name])}, got {name!r} for both",
                    )
                )
            else:
                seen[name] = role
        return problems


class IngestSettings(_Section):
    """Stage 1: decoding, validation and the flush of partial histograms."""

    flush_interval_seconds: PositiveFloat = Field(
        default=1.0, description="Flush partials this often."
    )
    max_message_bytes: PositiveInt = Field(
        default=1048576, description="Larger events go dead-letter."
    )
    known_models: tuple[NonEmptyStr, ...] = Field(
        default=(), description="Accepted model names; empty accepts any model."
    )
    deadletter_max_bytes: Annotated[int, Strict(), Ge(DEADLETTER_MIN_BYTES)] = Field(
        default=900000,
        description="Largest dead letter (key + JSON value), bytes; longer copies are cut.",
    )
    replay_chunk_records: PositiveInt = Field(
        default=10000,
        description="Offsets per chunk: commits stop at chunk starts, so a crash replays at "
        "most this many records per partition (counted once by stage 2).",
    )


class WindowSettings(_Section):
    """Event-time (or count) windows: size, step, lateness, idle partitions.

    Examples
    --------
    >>> WindowSettings(size_seconds=600, step_seconds=120).step_seconds
    120
    """

    kind: Literal["time", "count"] = Field(
        default="time", description="Event-time or last-N windows."
    )
    size_seconds: PositiveInt = Field(default=300, description="Time window length.")
    step_seconds: PositiveInt = Field(
        default=60, description="Time window step (= size: tumbling)."
    )
    allowed_lateness_seconds: NonNegativeFloat = Field(default=10.0, description="Watermark lag.")
    idle_timeout_seconds: PositiveFloat = Field(default=30.0, description="Idle partition timeout.")
    max_future_seconds: NonNegativeFloat = Field(
        default=300.0,
        description="Events further ahead of the worker's clock go dead-letter "
        "(future_timestamp); no watermark moves beyond now + this.",
    )
    count_size: PositiveInt = Field(default=1000, description="Count window length, events.")
    count_step: PositiveInt = Field(default=250, description="Count window step, events.")

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        for size, step in (("size_seconds", "step_seconds"), ("count_size", "count_step")):
            size_v, step_v = getattr(self, size), getattr(self, step)
            if step_v > size_v:
                problems.append(
                    (
                        self._key(step),
                        f"must be > 0 and <= {self._key(size)} ({size_v}), got {step_v}",
                    )
                )
            elif size_v % step_v:
                problems.append(
                    (
                        self._key(size),
                        f"must be a whole multiple of {self._key(step)} ({step_v}), got {size_v}",
                    )
                )
        return problems


def _default_min_effect() -> dict[Statistic, float]:
    return {"psi": 0.05}


class DecisionSettings(_Section):
    """Which statistics are computed, which ones alert, and how thresholds are set.

    A statistic listed in :attr:`thresholds` is compared with that fixed value; every other
    statistic gets the threshold matching :attr:`false_alarm_rate` at the window's sample sizes.

    The data-quality statistics ``missing_rate`` and ``mismatch_rate`` (a feature missing, or
    of the wrong type, more often than in the reference) are always computed, at the same
    :attr:`false_alarm_rate` (with it null: at the reference's rate plus
    :attr:`quality_min_effect`) and :attr:`min_samples`; :attr:`quality_alerts` makes them
    raise ``data_quality`` alerts besides the drift alerts of :attr:`alert_on`
    (:attr:`deciding` lists both).

    Examples
    --------
    >>> d = DecisionSettings(false_alarm_rate=None, statistics=["psi"], thresholds={"psi": 0.2})
    >>> d.thresholds
    {'psi': 0.2}
    >>> d.deciding
    ('psi', 'missing_rate', 'mismatch_rate')
    >>> DecisionSettings(quality_alerts=False).deciding
    ('psi',)
    """

    statistics: StatisticList = Field(default=STATISTICS, description="Statistics computed.")
    alert_on: StatisticList = Field(default=("psi",), description="Statistics that raise alerts.")
    min_samples: PositiveInt = Field(default=100, description="Fewer samples: window not judged.")
    false_alarm_rate: Annotated[float, Strict(), AllowInfNan(False), Gt(0), Lt(1)] | None = Field(
        default=0.0005, description="Target false-alarm rate per test, or null."
    )
    thresholds: dict[Statistic, PositiveFloat] = Field(
        default_factory=dict, description="Fixed thresholds, by statistic."
    )
    min_effect: dict[Statistic, NonNegativeFloat] = Field(
        default_factory=_default_min_effect, description="Smallest value that can alert."
    )
    quality_alerts: Bool = Field(
        default=True,
        description="Missing-value and type-mismatch rates raise data_quality alerts.",
    )
    quality_min_effect: Annotated[float, Strict(), AllowInfNan(False), Ge(0), Lt(1)] = Field(
        default=0.05,
        description="Smallest rise of a missing or mismatch rate over the reference's that "
        "can alert.",
    )
    correction: Literal["bh", "none"] = Field(
        default="bh", description="Multiple-testing correction."
    )
    psi_bins: Annotated[int, Strict(), Ge(2)] = Field(
        default=10, description="Coarse bins for PSI."
    )
    fine_bins: Annotated[int, Strict(), Ge(2)] = Field(default=100, description="Fine grid for KS.")
    top_categories: PositiveInt = Field(default=50, description="Categories kept per feature.")

    @property
    def deciding(self) -> tuple[str, ...]:
        """Statistics whose verdicts raise alerts: :attr:`alert_on`, then the data-quality
        ones when :attr:`quality_alerts` is on."""
        from stream_drift.stats.quality import MismatchRate, MissingRate

        quality = (MissingRate.name, MismatchRate.name) if self.quality_alerts else ()
        return (*self.alert_on, *quality)

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        stats = ", ".join(map(repr, self.statistics))
        outside = [s for s in self.alert_on if s not in self.statistics]
        if outside:
            problems.append(
                (
                    self._key("alert_on"),
                    f"every item must be one of {self._key('statistics')} ({stats}), "
                    f"got {', '.join(map(repr, outside))}",
                )
            )
        if self.false_alarm_rate is None:
            missing = [s for s in self.statistics if s not in self.thresholds]
            if missing:
                problems.append(
                    (
                        self._key("thresholds"),
                        f"must give a fixed threshold for every statistic when "
                        f"{self._key('false_alarm_rate')} is null, missing "
                        f"{', '.join(map(repr, missing))}",
                    )
                )
        if self.fine_bins % self.psi_bins:
            problems.append(
                (
                    self._key("fine_bins"),
                    f"must be a whole multiple of {self._key('psi_bins')} ({self.psi_bins}), "
                    f"got {self.fine_bins}",
                )
            )
        return problems


class AlertsSettings(_Section):
    """Alert state machine: hysteresis, cooldown, runbook link."""

    fire_after: PositiveInt = Field(
        default=2, description="Drifted windows in a row before firing."
    )
    resolve_after: PositiveInt = Field(
        default=2, description="Clean windows in a row before resolving."
    )
    resolve_ratio: Annotated[float, Strict(), AllowInfNan(False), Gt(0), Le(1)] = Field(
        default=0.8, description="A window is clean below resolve_ratio * threshold."
    )
    cooldown_seconds: NonNegativeFloat = Field(
        default=600.0, description="Quiet time after resolving."
    )
    runbook_base_url: Str = Field(
        default="",
        description="URL of your copy of docs/runbook.md; alerts link to <url>#<section>. "
        "Empty: no link.",
    )

    def _problems(self) -> list[tuple[str, str]]:
        problem = check_runbook_base_url(self.runbook_base_url)
        return [] if problem is None else [(self._key("runbook_base_url"), problem)]


class ReferencesSettings(_Section):
    """Where reference profiles come from."""

    files: tuple[NonEmptyStr, ...] = Field(default=(), description="Reference JSON files to load.")
    warmup_events: NonNegativeInt = Field(default=0, description="Learn a reference from N events.")
    warmup_max_models: PositiveInt = Field(
        default=100,
        description="Models learned at the same time; events of further new models go "
        "dead-letter (unknown_model) until a slot frees.",
    )


class WebSettings(_Section):
    """The worker's HTTP server (``/metrics``)."""

    host: NonEmptyStr = Field(default="127.0.0.1", description="Bind address.")
    port: Annotated[int, Strict(), Ge(1), Le(65535)] = Field(default=6066, description="Bind port.")


class MetricsSettings(_Section):
    """Prometheus export."""

    max_series: PositiveInt = Field(default=10000, description="Cap on exported label sets.")


class WorkerSettings(_Section):
    """Worker process."""

    log_level: LogLevel = Field(default="info", description="Logging level.")
    data_dir: NonEmptyStr = Field(default="/tmp/stream-drift", description="Local state directory.")


class Settings(_Section):
    """All settings of a ``stream-drift`` worker; build it with :func:`load_settings`.

    Immutable: derive a modified copy with :meth:`override`.

    Examples
    --------
    >>> s = Settings()
    >>> s.topics.events, s.window.size_seconds, s.decision.alert_on
    ('drift.events', 300, ('psi',))
    >>> s.override({"web.port": 7000}).web.port
    7000
    """

    app_id: KafkaName = Field(
        default="stream-drift", description="Faust app id and consumer group."
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicsSettings = TopicsSettings()
    ingest: IngestSettings = IngestSettings()
    window: WindowSettings = WindowSettings()
    decision: DecisionSettings = DecisionSettings()
    alerts: AlertsSettings = AlertsSettings()
    references: ReferencesSettings = ReferencesSettings()
    web: WebSettings = WebSettings()
    metrics: MetricsSettings = MetricsSettings()
    worker: WorkerSettings = WorkerSettings()

    def _problems(self) -> list[tuple[str, str]]:
        # A dead letter is one record of the worker's producer: it must fit its request limit.
        limit = self.kafka.producer_max_request_bytes - KAFKA_RECORD_OVERHEAD
        if self.ingest.deadletter_max_bytes > limit:
            return [
                (
                    "ingest.deadletter_max_bytes",
                    f"must be <= kafka.producer_max_request_bytes "
                    f"({self.kafka.producer_max_request_bytes}) minus {KAFKA_RECORD_OVERHEAD} "
                    f"bytes of Kafka record framing ({limit}), got "
                    f"{self.ingest.deadletter_max_bytes}; lower it or raise "
                    "kafka.producer_max_request_bytes",
                )
            ]
        return []

    def faust_settings(self) -> dict[str, Any]:
        """Keyword arguments for ``faust.App(...)``.

        Raises
        ------
        ConfigError
            When ``kafka.bootstrap_servers`` is ``embedded``: start the broker first, then
            ``settings.override({"kafka.bootstrap_servers": address})``.

        Examples
        --------
        >>> kw = Settings().override({"kafka.bootstrap_servers": "a:9092,b:9093"}).faust_settings()
        >>> kw["id"], kw["broker"], kw["topic_partitions"], kw["store"]
        ('stream-drift', 'kafka://a:9092,b:9093', 4, 'memory://')
        >>> kw["broker_credentials"] is None  # PLAINTEXT
        True
        """
        if self.kafka.embedded:
            raise ConfigError(
                [
                    "kafka.bootstrap_servers: is 'embedded'; start the embedded broker and "
                    "override this key with its host:port before building the Faust app"
                ]
            )
        return {
            "broker_credentials": self._faust_credentials(),
            "id": self.app_id,
            "broker": "kafka://" + ",".join(self.kafka.servers),
            "broker_session_timeout": self.kafka.session_timeout_seconds,
            "broker_heartbeat_interval": self.kafka.heartbeat_interval_seconds,
            "broker_rebalance_timeout": self.kafka.rebalance_timeout_seconds,
            "producer_max_batch_size": self.kafka.producer_max_batch_size,
            "producer_max_request_size": self.kafka.producer_max_request_bytes,
            "web_host": self.web.host,
            "web_port": self.web.port,
            "store": "memory://",
            "topic_partitions": self.topics.partitions.partials,
            "topic_replication_factor": self.topics.replication_factor,
            "datadir": self.worker.data_dir,
        }

    def _faust_credentials(self) -> Any:
        """``broker_credentials`` for Faust, built from :meth:`KafkaSettings.client_kwargs`:
        ``None`` (PLAINTEXT), a TLS context (SSL) or ``faust.SASLCredentials`` (SASL_*)."""
        kwargs = self.kafka.client_kwargs()
        if not self.kafka.uses_sasl:
            return kwargs.get("ssl_context")
        # Imported here only: this module stays importable without Faust.
        from faust.auth import SASLCredentials

        return SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            mechanism=kwargs["sasl_mechanism"],
            ssl_context=kwargs.get("ssl_context"),
        )

    def to_yaml(self) -> str:
        """The settings as YAML, every key present but ``kafka.sasl_password`` (a secret is
        never written out: give it to the reader with ``STREAM_DRIFT_KAFKA__SASL_PASSWORD``);
        :func:`load_settings` reads it back.

        Examples
        --------
        >>> print(Settings().to_yaml().splitlines()[0])
        app_id: stream-drift
        """
        text: str = yaml.dump(
            self.model_dump(mode="json", exclude={"kafka": {"sasl_password"}}),
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
        )
        return text

    def override(self, updates: Mapping[str, Any]) -> Settings:
        """A validated copy with the dotted keys in ``updates`` replaced.

        Parameters
        ----------
        updates
            ``{"dotted.key": value}``; values are Python objects of the key's type.

        Raises
        ------
        ConfigError
            An unknown key, or a value that does not validate.

        Examples
        --------
        >>> s = Settings().override({"kafka.session_timeout_seconds": 6,
        ...                          "kafka.heartbeat_interval_seconds": 1})
        >>> s.kafka.session_timeout_seconds
        6.0
        """
        data = self.model_dump()
        problems: list[str] = []
        for dotted, value in updates.items():
            parts = dotted.split(".")
            try:
                _resolve_key(parts)
            except _BadKey as exc:
                problems.append(f"{dotted}: {exc}")
                continue
            _set_path(data, parts, value)
        return _validate(data, problems, {})


# Record where each section class sits, so cross-key errors name the full dotted key.
def _register_sections(model: type[BaseModel], prefix: str) -> None:
    for name, field in model.model_fields.items():
        if _is_model(field.annotation):
            path = f"{prefix}.{name}" if prefix else name
            _SECTION_PATH[field.annotation] = path
            _register_sections(field.annotation, path)


_register_sections(Settings, "")


# --------------------------------------------------------------------------------------------
# YAML with YAML 1.2 scalars
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 core-schema scalars and an error on duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" entries may be overridden by the explicit keys
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Safe dumper quoting every string that YAML 1.1 *or* 1.2 would read as a non-string.

    The output then reads the same with :class:`_Loader` and with any other YAML parser.
    Strings holding line breaks or unprintable characters are double-quoted with escapes
    (PyYAML may otherwise single-quote them, and a line break in single quotes reads back as
    a space).
    """

    def represent_str(self, data: str) -> yaml.ScalarNode:
        if _NEEDS_ESCAPES.search(data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return super().represent_str(data)


_NEEDS_ESCAPES = re.compile(
    r"[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)
_Dumper.add_representer(str, _Dumper.represent_str)


def _core_schema_resolvers(*, keep_yaml11: bool) -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """PyYAML's implicit resolvers with YAML 1.2 bool/int/float (and no timestamps).

    With ``keep_yaml11`` the YAML 1.1 resolvers stay too (the dumper's quoting rules).
    """
    kinds = () if keep_yaml11 else ("bool", "int", "float", "timestamp")
    replaced = {f"tag:yaml.org,2002:{t}" for t in kinds}
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in replaced]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    core = [
        ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
        ("int", r"[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+", "-+0123456789"),
        (
            "float",
            r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            "-+0123456789.",
        ),
    ]
    for tag, pattern, firsts in core:
        regexp = re.compile(rf"^(?:{pattern})$")
        for first in firsts:
            table.setdefault(first, []).append((f"tag:yaml.org,2002:{tag}", regexp))
    return table


_Loader.yaml_implicit_resolvers = _core_schema_resolvers(keep_yaml11=False)
_Dumper.yaml_implicit_resolvers = _core_schema_resolvers(keep_yaml11=True)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as stream:
            data = yaml.load(stream, Loader=_Loader)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read configuration file: {exc.strerror}"]) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{path}{where}: invalid YAML: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{path}: must hold a mapping of settings keys, got {type(data).__name__}"]
        )
    return data


# --------------------------------------------------------------------------------------------
# schema walking, environment overlay
# --------------------------------------------------------------------------------------------


def _unwrap(tp: Any, meta: Sequence[Any] = ()) -> tuple[Any, tuple[Any, ...]]:
    """Strip ``Annotated`` layers, collecting their metadata."""
    collected = tuple(meta)
    while get_origin(tp) is Annotated:
        base, *extra = get_args(tp)
        tp, collected = base, collected + tuple(extra)
    return tp, collected


def _non_null(tp: Any) -> Any:
    """``X`` for ``X | None``; ``tp`` unchanged otherwise."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


class _BadKey(Exception):
    """A key path that names no setting: why, and a suggested sibling key (or ``""``)."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason + hint)
        self.reason = reason


def _resolve_key(parts: Sequence[str]) -> Any:
    """The annotation at a key path; raises :class:`_BadKey` when the path is invalid.

    A path may stop at a section (its value is then a mapping), at a leaf, or one level below
    a mapping-valued leaf (one entry of ``decision.thresholds``).
    """
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = f"in {_SECTION_PATH[model]}" if model in _SECTION_PATH else "at the top level"
            raise _BadKey(f"unknown key {part!r} {where}", _suggest(part, list(model.model_fields)))
        rest = parts[index + 1 :]
        if _is_model(field.annotation):
            model = field.annotation
            continue
        tp = _non_null(_unwrap(field.annotation)[0])
        if get_origin(tp) is dict and len(rest) == 1:
            return _unwrap(get_args(tp)[1])[0]
        if rest:
            raise _BadKey(f"{part!r} is a single value, not a section")
        return field.annotation
    return model


def _env_names() -> list[str]:
    """Every variable name that sets one value (leaves and mapping entries)."""
    names: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            var = f"{prefix}{name.upper()}"
            tp = _non_null(_unwrap(field.annotation)[0])
            if _is_model(field.annotation):
                walk(field.annotation, var + "__")
                continue
            names.append(var)
            if get_origin(tp) is dict:
                key_type = _unwrap(get_args(tp)[0])[0]
                names.extend(f"{var}__{k.upper()}" for k in get_args(key_type))

    walk(Settings, ENV_PREFIX)
    return names


def _suggest_env(name: str) -> str:
    """``; did you mean STREAM_DRIFT_...?`` for a misspelt variable name, or ``""``."""
    suffixes = {var[len(ENV_PREFIX) :]: var for var in _env_names()}
    close = difflib.get_close_matches(name[len(ENV_PREFIX) :].upper(), suffixes, n=1, cutoff=0.6)
    return f"; did you mean {suffixes[close[0]]}?" if close else ""


def _suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _parse_env_value(raw: str, annotation: Any) -> Any:
    """Parse a variable's text as the type the key expects.

    Strings are taken verbatim; lists are JSON/YAML flow (``["a", "b"]``) or comma-separated;
    everything else (numbers, booleans, null, mappings) is parsed as YAML.
    """
    tp = _non_null(_unwrap(annotation)[0])
    if tp is str or (get_origin(tp) is Literal and all(isinstance(a, str) for a in get_args(tp))):
        return raw
    if _unwrap(tp)[0] in (str, SecretStr):  # optional strings: a password "123" stays text
        return None if raw == "null" else raw
    if get_origin(tp) is tuple:
        text = raw.strip()
        if text.startswith("["):
            return yaml.load(text, Loader=_Loader)
        return [item.strip() for item in text.split(",")] if text else []
    return yaml.load(raw, Loader=_Loader)


def _set_path(data: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            return  # the file has a non-mapping here: validation reports it
        node = child
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        merged = dict(node[last])
        merged.update(value)
        value = merged
    node[last] = value


def _apply_env(
    data: dict[str, Any],
    env: Mapping[str, str],
    problems: list[str],
    sources: dict[tuple[str, ...], str],
) -> None:
    overrides = []
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        try:
            if not all(parts):
                raise _BadKey("empty key between '__' separators")
            annotation = _resolve_key(parts)
        except _BadKey as exc:
            problems.append(f"{name}: not a setting ({exc.reason}){_suggest_env(name)}")
            continue
        try:
            value = _parse_env_value(raw, annotation)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "syntax error"
            problems.append(f"{'.'.join(parts)}: cannot parse {raw!r} ({problem}) (from {name})")
            continue
        overrides.append((len(parts), name, parts, value))
    # Whole sections first, so a more specific variable wins over a mapping-valued one.
    for _, name, parts, value in sorted(overrides, key=lambda o: (o[0], o[1])):
        _set_path(data, parts, value)
        sources[tuple(parts)] = name


# --------------------------------------------------------------------------------------------
# validation errors -> one line per problem
# --------------------------------------------------------------------------------------------


def _describe(tp: Any, meta: Sequence[Any] = ()) -> str:
    """What a value of annotation ``tp`` must be, in words, e.g. ``an integer > 0``."""
    tp, meta = _unwrap(tp, meta)
    for item in meta:
        if isinstance(item, _Expected):
            return item.text
    if _non_null(tp) is not tp:
        return f"{_describe(_non_null(tp))}, or null"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list, each item {_describe(get_args(tp)[0])}"
    if origin is dict:
        key, value = get_args(tp)
        return f"a mapping, each key {_describe(key)} and each value {_describe(value)}"
    if _is_model(tp):
        return "a mapping of keys " + ", ".join(tp.model_fields)
    base = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )
    bounds = []
    for item in meta:
        if isinstance(item, Gt):
            bounds.append(f"> {item.gt}")
        elif isinstance(item, Ge):
            bounds.append(f">= {item.ge}")
        elif isinstance(item, Lt):
            bounds.append(f"< {item.lt}")
        elif isinstance(item, Le):
            bounds.append(f"<= {item.le}")
        elif isinstance(item, MinLen) and item.min_length == 1 and tp is str:
            base = "a non-empty string"
    return " ".join([base, " and ".join(bounds)]).strip()


def _annotation_at(loc: Sequence[int | str]) -> tuple[Any, tuple[Any, ...]] | None:
    """The annotation (and metadata) of the value at a pydantic error location."""
    tp: Any = Settings
    meta: tuple[Any, ...] = ()
    for part in loc:
        tp, meta = _unwrap(_non_null(_unwrap(tp, meta)[0]), ())
        if part == "[key]":  # the key of the mapping entry just walked into
            return None
        if _is_model(tp):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp, meta = field.annotation, tuple(field.metadata)
        elif get_origin(tp) is tuple and isinstance(part, int):
            tp, meta = get_args(tp)[0], ()
        elif get_origin(tp) is dict:
            tp, meta = get_args(tp)[1], ()
        else:
            return None
    return tp, meta


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list | dict):
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _source(loc: Sequence[int | str], sources: Mapping[tuple[str, ...], str]) -> str:
    key = tuple(str(p) for p in loc)
    for end in range(len(key), 0, -1):
        if key[:end] in sources:
            return f" (from {sources[key[:end]]})"
    return ""


def _problem_lines(exc: ValidationError, sources: Mapping[tuple[str, ...], str]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        kind = err["type"]
        if kind == "config_problems":
            for key, message in err["ctx"]["problems"]:
                lines.append(f"{key}: {message}{_source(key.split('.'), sources)}")
            continue
        where = _source(loc, sources)
        if kind == "extra_forbidden":
            lines.append(f"{_dotted(loc)}: unknown key{_unknown_hint(loc)}{where}")
            continue
        if loc and loc[-1] == "[key]":
            parent = _annotation_at(loc[:-2])
            expected = "a valid key"
            if parent is not None:
                mapping = _non_null(_unwrap(*parent)[0])
                if get_origin(mapping) is dict:
                    expected = _describe(get_args(mapping)[0])
            lines.append(
                f"{_dotted(loc[:-2])}: every key must be {expected}, got {_show(err['input'])}"
                f"{where}"
            )
            continue
        found = _annotation_at(loc)
        if found is not None and _is_secret(found[0]):
            kind_of = type(err["input"]).__name__
            message = f"must be {_describe(*found)}, got a value of type {kind_of} (hidden)"
        elif found is not None:
            message = f"must be {_describe(*found)}, got {_show(err['input'])}"
        else:
            message = err["msg"]
        lines.append(f"{_dotted(loc) or '(top level)'}: {message}{where}")
    return lines


def _is_secret(tp: Any) -> bool:
    """``True`` for a :data:`Secret` (or optional one): its value is never shown."""
    return _unwrap(_non_null(_unwrap(tp)[0]))[0] is SecretStr


def _unknown_hint(loc: Sequence[int | str]) -> str:
    """``; did you mean 'x'?`` for a misspelt key: a sibling, or a key elsewhere."""
    found = _annotation_at(loc[:-1])
    if found is None or not _is_model(found[0]):
        return ""
    key = str(loc[-1])
    siblings = list(found[0].model_fields)
    hint = _suggest(key, siblings)
    if hint:
        return hint
    elsewhere = {
        f"{path}.{name}": name
        for model, path in _SECTION_PATH.items()
        for name in model.model_fields
    }
    elsewhere.update({name: name for name in Settings.model_fields})
    close = difflib.get_close_matches(key, list(elsewhere.values()), n=1, cutoff=0.8)
    if close:
        full = next(path for path, name in elsewhere.items() if name == close[0])
        return f"; did you mean {full!r}?"
    return f"; valid keys: {', '.join(siblings)}"


def _validate(
    data: dict[str, Any], problems: list[str], sources: Mapping[tuple[str, ...], str]
) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([*problems, *_problem_lines(exc, sources)]) from None
    if problems:
        raise ConfigError(problems)
    return settings


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Read, override and validate the settings.

    Parameters
    ----------
    path
        YAML file; ``None`` for defaults plus environment only.
    env
        Environment to read ``STREAM_DRIFT_*`` overrides from; defaults to ``os.environ``.
        Every variable with the prefix must name a settings key.

    Returns
    -------
    Settings
        The validated, immutable settings.

    Raises
    ------
    ConfigError
        Listing every problem, one per line (``key.path: problem``).

    Examples
    --------
    >>> s = load_settings(env={"STREAM_DRIFT_KAFKA__BOOTSTRAP_SERVERS": "10.0.0.5:9092",
    ...                        "STREAM_DRIFT_DECISION__ALERT_ON": "psi,ks"})
    >>> s.kafka.servers, s.decision.alert_on
    (('10.0.0.5:9092',), ('psi', 'ks'))
    >>> try:
    ...     load_settings(env={"STREAM_DRIFT_WEB__PORT": "http",
    ...                        "STREAM_DRIFT_WEB_HOST": "0.0.0.0"})
    ... except ConfigError as exc:
    ...     print(exc)
    STREAM_DRIFT_WEB_HOST: not a setting (unknown key 'web_host' at the top level); \
did you mean STREAM_DRIFT_WEB__HOST?
    web.port: must be an integer >= 1 and <= 65535, got 'http' (from STREAM_DRIFT_WEB__PORT)
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    data: dict[str, Any] = {} if path is None else _read_yaml(Path(path))
    problems: list[str] = []
    sources: dict[tuple[str, ...], str] = {}
    _apply_env(data, environ, problems, sources)
    return _validate(data, problems, sources)
