"""Security basics: TLS/SASL settings reach every Kafka client; secrets are never shown; no
unsafe deserialisation (eval, pickle, unsafe YAML, marshal, exec) anywhere in the package.

The embedded broker (Tansu) speaks neither TLS nor SASL, so these tests check what every
client is *given* (the helper, the clients built with it, a scan proving no client is built
without it) and the validation; PLAINTEXT end to end is covered by the Kafka tests.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from pydantic import SecretStr

import stream_drift
from stream_drift.app.faust_config import faust_settings
from stream_drift.config import ConfigError, KafkaSettings, Settings, load_settings
from stream_drift.config.yaml_io import YAMLError, parse_yaml

PACKAGE = Path(stream_drift.__file__).resolve().parent
ROOT = PACKAGE.parent
PASSWORD = "pw-Sup3r-S3cret-71"
SASL_ENV = {
    "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "STREAM_DRIFT_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "STREAM_DRIFT_KAFKA__SASL_USERNAME": "drift",
    "STREAM_DRIFT_KAFKA__SASL_PASSWORD": PASSWORD,
}


def problems_of(env: dict[str, str], path: Path | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    assert PASSWORD not in str(info.value)
    return info.value.problems


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA and a client certificate with its key, in PEM files (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    run = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
    ]
    subprocess.run(
        [*run, "/CN=test-ca", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        [*run, "/CN=drift", "-keyout", str(d / "client.key"), "-out", str(d / "client.pem")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (d / "garbage.pem").write_text("not a certificate\n")
    return {p.stem + p.suffix.replace(".", "_"): p for p in d.iterdir()}


def sasl_ssl(pki: dict[str, Path], **extra: Any) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="drift",
        sasl_password=SecretStr(PASSWORD),
        ssl_cafile=str(pki["ca_pem"]),
        ssl_certfile=str(pki["client_pem"]),
        ssl_keyfile=str(pki["client_key"]),
        **extra,
    )


# --- the helper ----------------------------------------------------------------------------


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    from stream_drift.app.kafka_io import DEFAULT_CONNECT_TIMEOUT

    s = load_settings(env={})
    assert s.kafka.connect_timeout_seconds == DEFAULT_CONNECT_TIMEOUT == 10.0
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.kafka.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert faust_settings(s)["broker_credentials"] is None


def test_sasl_plaintext_kwargs_from_the_environment() -> None:
    s = load_settings(env=SASL_ENV)
    assert s.kafka.client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "drift",
        "sasl_plain_password": PASSWORD,
    }


def test_protocol_and_mechanism_are_case_insensitive() -> None:
    env = {**SASL_ENV, "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "sasl_plaintext"}
    env["STREAM_DRIFT_KAFKA__SASL_MECHANISM"] = "plain"
    k = load_settings(env=env).kafka
    assert (k.security_protocol, k.sasl_mechanism) == ("SASL_PLAINTEXT", "PLAIN")


def test_a_numeric_password_from_the_environment_stays_text() -> None:
    s = load_settings(env={**SASL_ENV, "STREAM_DRIFT_KAFKA__SASL_PASSWORD": "0012345"})
    assert s.kafka.client_kwargs()["sasl_plain_password"] == "0012345"


def test_sasl_ssl_kwargs_carry_a_verifying_tls_context(pki: dict[str, Path]) -> None:
    kw = sasl_ssl(pki).client_kwargs()
    context = kw.pop("ssl_context")
    assert kw == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "drift",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    (ca,) = context.get_ca_certs()
    assert (("commonName", "test-ca"),) in ca["subject"]


def test_ssl_without_cafile_uses_the_system_cas() -> None:
    context = KafkaSettings(security_protocol="SSL").client_kwargs()["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_an_unloadable_pem_file_names_its_key(pki: dict[str, Path]) -> None:
    bad_ca = KafkaSettings(security_protocol="SSL", ssl_cafile=str(pki["garbage_pem"]))
    with pytest.raises(ConfigError, match=r"^kafka\.ssl_cafile: cannot be loaded as PEM"):
        bad_ca.client_kwargs()
    bad_cert = KafkaSettings(
        security_protocol="SSL", ssl_cafile=str(pki["ca_pem"]), ssl_certfile=str(pki["ca_pem"])
    )  # a certificate without its key
    with pytest.raises(ConfigError, match=r"^kafka\.ssl_certfile: cannot be loaded as PEM"):
        bad_cert.client_kwargs()


# --- validation ----------------------------------------------------------------------------


def test_sasl_needs_mechanism_username_and_password() -> None:
    assert problems_of({"STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"}) == (
        "kafka.sasl_mechanism: required when kafka.security_protocol is SASL_SSL; one of "
        "'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'",
        "kafka.sasl_username: required when kafka.security_protocol is SASL_SSL",
        "kafka.sasl_password: required when kafka.security_protocol is SASL_SSL; set it with "
        "STREAM_DRIFT_KAFKA__SASL_PASSWORD",
    )


def test_an_empty_password_is_missing() -> None:
    (line,) = problems_of({**SASL_ENV, "STREAM_DRIFT_KAFKA__SASL_PASSWORD": ""})
    assert line.startswith("kafka.sasl_password: required when")


def test_sasl_settings_without_a_sasl_protocol_are_rejected() -> None:
    env = {k: v for k, v in SASL_ENV.items() if "PROTOCOL" not in k}
    lines = problems_of(env)
    assert [line.split(":")[0] for line in lines] == [
        "kafka.sasl_mechanism",
        "kafka.sasl_username",
        "kafka.sasl_password",
    ]
    assert all("is only used with SASL_PLAINTEXT or SASL_SSL" in line for line in lines)


def test_unknown_protocol_and_mechanism_name_the_choices() -> None:
    lines = problems_of(
        {
            "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "TLS",
            "STREAM_DRIFT_KAFKA__SASL_MECHANISM": "GSSAPI",
        }
    )
    assert lines == (
        "kafka.security_protocol: must be one of 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', "
        "'SASL_SSL', got 'TLS' (from STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL)",
        "kafka.sasl_mechanism: must be one of 'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', "
        "or null, got 'GSSAPI' (from STREAM_DRIFT_KAFKA__SASL_MECHANISM)",
    )


def test_tls_files_must_exist_and_need_a_tls_protocol(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    lines = problems_of(
        {
            "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SSL",
            "STREAM_DRIFT_KAFKA__SSL_CAFILE": str(missing),
            "STREAM_DRIFT_KAFKA__SSL_CERTFILE": str(tmp_path),
        }
    )
    assert lines == (
        f"kafka.ssl_cafile: file not found: {str(missing)!r} (from STREAM_DRIFT_KAFKA__SSL_CAFILE)",
        f"kafka.ssl_certfile: not a readable file: {str(tmp_path)!r}"
        " (from STREAM_DRIFT_KAFKA__SSL_CERTFILE)",
    )
    (plain,) = problems_of({"STREAM_DRIFT_KAFKA__SSL_CAFILE": str(missing)})
    assert plain.startswith("kafka.ssl_cafile: is only used with SSL or SASL_SSL, but ")


def test_a_key_needs_its_certificate(pki: dict[str, Path]) -> None:
    (line,) = problems_of(
        {
            "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SSL",
            "STREAM_DRIFT_KAFKA__SSL_KEYFILE": str(pki["client_key"]),
        }
    )
    assert line.startswith("kafka.ssl_keyfile: needs kafka.ssl_certfile")


def test_the_embedded_broker_is_plaintext_only() -> None:
    (line,) = problems_of(
        {
            "STREAM_DRIFT_KAFKA__BOOTSTRAP_SERVERS": "embedded",
            "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SSL",
        }
    )
    assert line.startswith("kafka.security_protocol: must be PLAINTEXT for the embedded broker")


# --- secrets are never shown ---------------------------------------------------------------


def test_the_password_is_not_in_repr_dump_or_yaml() -> None:
    s = load_settings(env=SASL_ENV)
    for text in (repr(s), str(s), repr(s.kafka), s.to_yaml(), str(s.model_dump(mode="json"))):
        assert PASSWORD not in text
    assert "sasl_password" not in s.to_yaml()
    assert s.kafka.sasl_password == SecretStr(PASSWORD)


def test_to_yaml_plus_the_environment_round_trips(tmp_path: Path) -> None:
    s = load_settings(env=SASL_ENV)
    path = tmp_path / "worker.yaml"
    path.write_text(s.to_yaml(), encoding="utf-8")
    assert PASSWORD not in path.read_text()
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password: required"):
        load_settings(path, env={})
    env = {"STREAM_DRIFT_KAFKA__SASL_PASSWORD": PASSWORD}
    assert load_settings(path, env=env) == s


def test_a_mistyped_password_in_a_file_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kafka:\n  sasl_password: 4242424242\n", encoding="utf-8")
    (line,) = problems_of({}, path)
    assert (
        line == "kafka.sasl_password: must be a string, or null, got a value of type int (hidden)"
    )
    assert "4242424242" not in line


def test_faust_credentials_do_not_show_the_password(pki: dict[str, Path]) -> None:
    from faust.auth import SASLCredentials

    s = Settings().override({"kafka": sasl_ssl(pki).model_dump()})
    creds = faust_settings(s)["broker_credentials"]
    assert isinstance(creds, SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == (
        "drift",
        PASSWORD,
        "SCRAM-SHA-256",
    )
    assert creds.protocol.value == "SASL_SSL" and isinstance(creds.ssl_context, ssl.SSLContext)
    assert PASSWORD not in repr(creds)


def test_the_supervisor_passes_the_password_in_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_drift.tools import supervisor

    seen: dict[str, Any] = {}

    class FakePopen:
        pid = 4242

        def __init__(self, args: list[str], **kwargs: Any) -> None:
            seen.update(args=args, env=kwargs["env"])

        def poll(self) -> int:
            return 0

    monkeypatch.setattr("stream_drift.tools.supervisor.subprocess.Popen", FakePopen)
    w = supervisor.WorkerProcess(load_settings(env=SASL_ENV), tmp_path).start()
    assert PASSWORD not in w.config_path.read_text()
    assert seen["env"]["STREAM_DRIFT_KAFKA__SASL_PASSWORD"] == PASSWORD
    child_env = {k: v for k, v in seen["env"].items() if k.startswith("STREAM_DRIFT_")}
    assert load_settings(w.config_path, env=child_env) == w.settings


def test_building_the_worker_app_logs_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's app, its runtime and health are built from SASL settings: nothing logged,
    no health figure and no repr shows the password."""
    from stream_drift.app.app import create_app
    from stream_drift.app.web import health_report, liveness_report, readiness_report

    s = load_settings(env={**SASL_ENV, "STREAM_DRIFT_WORKER__DATA_DIR": str(tmp_path)})
    with caplog.at_level(logging.DEBUG):
        app = create_app(s)
    texts = [r.getMessage() for r in caplog.records]
    texts += [repr(app.conf.broker_credentials), repr(app.runtime)]
    for report in (health_report, liveness_report, readiness_report):
        texts.append(repr(report(app.runtime, 0.0)))
    assert not [t for t in texts if PASSWORD in t]


# --- every client gets the kwargs ------------------------------------------------------------


def test_aiokafka_clients_accept_the_kwargs(pki: dict[str, Path]) -> None:
    """Real aiokafka clients built with the helper's kwargs hold them (no connection made)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    kw = sasl_ssl(pki).client_kwargs()

    async def build() -> list[Any]:
        producer = AIOKafkaProducer(bootstrap_servers="k:9093", **kw)
        consumer = AIOKafkaConsumer(bootstrap_servers="k:9093", **kw)
        admin = AIOKafkaAdminClient(bootstrap_servers="k:9093", **kw)
        clients = [producer.client, consumer._client, admin._client]
        await producer.stop()
        await consumer.stop()
        await admin.close()
        return clients

    for client in asyncio.run(build()):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-256"
        assert client._sasl_plain_username == "drift"
        assert client._sasl_plain_password == PASSWORD
        assert client._ssl_context is kw["ssl_context"]


def test_librdkafka_stage1_gets_the_same_security(pki: dict[str, Path]) -> None:
    """Stage 1 on librdkafka: the same protocol, mechanism, user, password and PEM files, in
    librdkafka's property names; a real ``confluent_kafka.Consumer`` accepts them (its TLS
    files are loaded when it is built; no connection is made to 127.0.0.1:1)."""
    from confluent_kafka import Consumer

    from stream_drift.app.rdkafka_source import librdkafka_config

    kafka = sasl_ssl(pki, bootstrap_servers="127.0.0.1:1")
    conf = librdkafka_config(Settings(kafka=kafka))
    assert {k: v for k, v in conf.items() if k.startswith(("security", "sasl", "ssl"))} == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "drift",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(pki["ca_pem"]),
        "ssl.certificate.location": str(pki["client_pem"]),
        "ssl.key.location": str(pki["client_key"]),
    }
    Consumer(conf).close()
    plain = librdkafka_config(Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1")))
    assert plain["security.protocol"] == "PLAINTEXT"
    assert not any(k.startswith(("sasl", "ssl")) for k in plain)
    system_cas = librdkafka_config(Settings(kafka=KafkaSettings(security_protocol="SSL")))
    assert system_cas["ssl.ca.location"] == "probe"  # no cafile: the system's CAs


def test_faust_gives_every_client_the_same_auth(pki: dict[str, Path], tmp_path: Path) -> None:
    """Faust's consumer, producer and topic admin all use ``credentials_to_aiokafka_auth`` of
    ``broker_credentials``: it yields the helper's SASL kwargs."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from stream_drift.app.app import create_app

    s = Settings().override({"kafka": sasl_ssl(pki).model_dump(), "worker.data_dir": str(tmp_path)})
    app = create_app(s)
    auth = dict(credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context))
    assert isinstance(auth.pop("ssl_context"), ssl.SSLContext)
    assert auth == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "drift",
        "sasl_plain_password": PASSWORD,
    }
    assert cast(Any, app.producer).credentials is app.conf.broker_credentials


class _Recorder:
    """Stands in for an aiokafka client class: records its kwargs, connects to nothing."""

    built: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.built.append((type(self).__name__, kwargs))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, partitions: Any) -> None:
        return None

    async def seek_to_beginning(self, *partitions: Any) -> None:
        return None

    async def seek_to_end(self, *partitions: Any) -> None:
        return None

    async def getmany(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return {}

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def create_topics(self, *args: Any, **kwargs: Any) -> Any:
        class Response:
            topic_errors: ClassVar[list[tuple[str, int, str]]] = []

        return Response()

    async def describe_topics(self, *args: Any) -> list[dict[str, Any]]:
        # The topics ``run_all`` reads: alerts, and the worker's references.
        return [
            {"topic": name, "error_code": 0, "partitions": [{"partition": 0}]}
            for name in ("alerts", "drift.references")
        ]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    import aiokafka
    import aiokafka.admin

    from stream_drift.app import ingest

    built: list[tuple[str, dict[str, Any]]] = []
    classes = {
        name: type(name, (_Recorder,), {"built": built})
        for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient")
    }
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", classes["AIOKafkaProducer"])
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", classes["AIOKafkaConsumer"])
    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", classes["AIOKafkaAdminClient"])
    monkeypatch.setattr(ingest, "AIOKafkaConsumer", classes["AIOKafkaConsumer"])
    yield built


def test_worker_services_and_client_commands_pass_the_kwargs(
    recorded: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """Stage 1's consumer, the reference reader, and the clients of ``reference publish``,
    ``produce``, ``alerts``, the worker's reachability check and topic creation."""
    from stream_drift.app import kafka_io
    from stream_drift.app.admin import create_topics
    from stream_drift.app.ingest import IngestService
    from stream_drift.app.references import ReferenceFollower
    from stream_drift.app.runtime import Runtime
    from stream_drift.pipeline.reference import build_reference

    env = {
        **SASL_ENV,
        "STREAM_DRIFT_WORKER__DATA_DIR": str(tmp_path),
        "STREAM_DRIFT_INGEST__CLIENT": "aiokafka",  # librdkafka's stage 1: test below
    }
    s = load_settings(env=env)
    expected = s.kafka.client_kwargs()
    profile = build_reference({"a": [1.0, 2.0, 3.0]}, model="m")

    async def run_all() -> None:
        runtime = Runtime(s)
        topics: Any = None
        await IngestService.on_start(_bare(IngestService, runtime, topics))
        await ReferenceFollower.on_start(_bare(ReferenceFollower, runtime, topics))
        sec = s.kafka.client_kwargs()
        await kafka_io.publish_reference("k:1", "refs", profile, security=sec)
        await kafka_io.produce("k:1", "events", [b"{}"], security=sec)
        async for _ in kafka_io.follow("k:1", "alerts", idle_timeout=0.0, security=sec):
            break
        await kafka_io.check_reachable("k:1", security=sec)
        await create_topics("k:1", {"t": 1}, security=sec)

    asyncio.run(run_all())
    kinds = [kind for kind, _ in recorded]
    assert kinds == [
        "AIOKafkaConsumer",  # stage 1
        "AIOKafkaConsumer",  # references
        "AIOKafkaAdminClient",  # ... and its partition lookup
        "AIOKafkaProducer",  # reference publish
        "AIOKafkaAdminClient",  # ... and its topic creation
        "AIOKafkaProducer",  # produce
        "AIOKafkaConsumer",  # alerts
        "AIOKafkaAdminClient",  # ... and its partition lookup
        "AIOKafkaAdminClient",  # worker start-up check
        "AIOKafkaAdminClient",  # create_topics
    ]
    for kind, kwargs in recorded:
        got = {k: kwargs.get(k) for k in expected}
        assert got == expected, kind


def _bare(cls: type[Any], runtime: Any, topics: Any) -> Any:
    """An instance of a mode service with only what ``on_start`` reads (no event loop)."""
    obj = object.__new__(cls)
    obj.runtime = runtime
    obj.topics = topics
    obj.consumer = None
    return obj


# --- scans of the source -------------------------------------------------------------------

CLIENT_CLASSES = {
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "AIOKafkaAdminClient",
    "KafkaAdminClient",
    "KafkaProducer",
    "KafkaConsumer",
    "Consumer",  # confluent-kafka (librdkafka), stage 1
}
CLIENT_FUNCTIONS = {
    "publish_reference",
    "produce",
    "follow",
    "check_reachable",
    "create_topics",
    "create_topics_sync",
}
# Files allowed to build PLAINTEXT-only clients, and why.
PLAINTEXT_ONLY = {
    "stream_drift/tools/demo.py": "the demo runs on the embedded broker (PLAINTEXT only)",
}
# Gaps outside this change's files: remove an entry once the file passes ``security``.
KNOWN_GAPS: dict[str, str] = {}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _secured(node: ast.Call) -> bool:
    """A client call is secured when it passes ``**<...>.client_kwargs()`` or
    ``**dict(security or {})``; a client function when it passes ``security=``."""
    if any(ast.unparse(a).startswith("librdkafka_config(") for a in node.args):
        return True  # librdkafka's properties, security included (test below)
    for kw in node.keywords:
        if kw.arg == "security":
            return True
        if kw.arg is None:
            text = ast.unparse(kw.value)
            if text.endswith(".client_kwargs()") or text == "dict(security or {})":
                return True
    return False


def _unsecured_calls() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            is_client = name in CLIENT_CLASSES or (
                name in CLIENT_FUNCTIONS and not isinstance(node.func, ast.Attribute)
            )
            if is_client and not _secured(node):
                rel = path.relative_to(ROOT).as_posix()
                found.setdefault(rel, []).append(f"{name} (line {node.lineno})")
    return found


def test_the_scan_sees_the_clients() -> None:
    counts: dict[str, int] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _call_name(node) in CLIENT_CLASSES:
                counts[path.name] = counts.get(path.name, 0) + 1
    assert {"kafka_io.py", "ingest.py", "admin.py", "rdkafka_source.py"} <= set(counts)


def test_no_kafka_client_is_built_without_the_security_kwargs() -> None:
    unsecured = _unsecured_calls()
    allowed = set(PLAINTEXT_ONLY) | set(KNOWN_GAPS)
    assert {f: calls for f, calls in unsecured.items() if f not in allowed} == {}
    # Entries that no longer apply must go, so the lists stay true.
    assert set(KNOWN_GAPS) <= set(unsecured), "a known gap was fixed: remove it from KNOWN_GAPS"


def _first_call(code: str) -> ast.Call:
    node = ast.parse(code).body[0]
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    return node.value


def test_the_scan_would_catch_an_unsecured_client() -> None:
    for code in (
        "AIOKafkaProducer(bootstrap_servers=b)",
        "AIOKafkaConsumer(bootstrap_servers=b, **other)",
        "produce(b, t, v)",
    ):
        assert not _secured(_first_call(code)), code
    for code in (
        "AIOKafkaProducer(bootstrap_servers=b, **s.kafka.client_kwargs())",
        "AIOKafkaAdminClient(bootstrap_servers=b, **dict(security or {}))",
        "create_topics_sync(b, t, security=settings.kafka.client_kwargs())",
    ):
        assert _secured(_first_call(code)), code


# Calls that deserialise or run code from data.
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
FORBIDDEN_ATTRS = {
    ("yaml", "unsafe_load"),
    ("yaml", "unsafe_load_all"),
    ("yaml", "full_load"),
    ("yaml", "full_load_all"),
    ("yaml", "load_all"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def _unsafe(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"import {a.name}" for a in node.names if a.name in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in FORBIDDEN_MODULES:
            out.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                out.append(f"{func.id}() line {node.lineno}")
            if isinstance(func, ast.Name) and func.id == "YAML":  # ruamel.yaml
                typ = {kw.arg: kw.value for kw in node.keywords}.get("typ")
                if not (isinstance(typ, ast.Constant) and typ.value == "safe"):
                    out.append(f"YAML() without typ='safe' line {node.lineno}")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                pair = (func.value.id, func.attr)
                if pair in FORBIDDEN_ATTRS:
                    out.append(f"{'.'.join(pair)}() line {node.lineno}")
                if pair == ("yaml", "load"):
                    loader = {kw.arg: kw.value for kw in node.keywords}.get("Loader")
                    name = loader.attr if isinstance(loader, ast.Attribute) else None
                    name = loader.id if isinstance(loader, ast.Name) else name
                    if name not in SAFE_LOADERS:
                        out.append(f"yaml.load() without a safe Loader line {node.lineno}")
                if func.attr == "load" and pair[0] in ("np", "numpy"):
                    allow = {kw.arg: kw.value for kw in node.keywords}.get("allow_pickle")
                    if not (isinstance(allow, ast.Constant) and allow.value is False):
                        out.append(f"np.load() without allow_pickle=False line {node.lineno}")
    return out


def test_no_unsafe_deserialisation_or_code_execution_in_the_package() -> None:
    found = {
        path.relative_to(ROOT).as_posix(): bad
        for path in _sources()
        if (bad := _unsafe(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {}


def test_the_yaml_loader_in_use_is_safe() -> None:
    with pytest.raises(YAMLError, match="could not determine a constructor"):
        parse_yaml("!!python/object/apply:os.system ['true']")


def test_the_unsafe_scan_catches_each_pattern() -> None:
    samples = [
        "eval(x)",
        "exec(x)",
        "import pickle",
        "from marshal import loads",
        "yaml.load(s)",
        "yaml.load(s, Loader=yaml.Loader)",
        "yaml.unsafe_load(s)",
        "YAML(typ='unsafe')",
        "YAML()",
        "np.load(p)",
    ]
    for code in samples:
        assert _unsafe(ast.parse(code)), code
    safe = "yaml.load(s, Loader=SafeLoader); np.load(p, allow_pickle=False); YAML(typ='safe')"
    assert _unsafe(ast.parse(safe)) == []


def test_the_package_scan_covers_input_paths() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in _sources()}
    assert {
        "config/yaml_io.py",
        "pipeline/events.py",
        "pipeline/decode.py",
        "pipeline/reference.py",
        "tools/datasets.py",
        "cli.py",
    } <= names
    assert "app/ingest.py" in names
