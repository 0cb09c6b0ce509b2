"""Client commands against a broker that is not there: one line on stderr, exit status 2.

Every command runs as a real subprocess of the installed CLI (``python -m stream_drift.cli``)
against ``127.0.0.1:<port>`` where nothing listens (a free port, left closed), or where a
socket accepts connections and never answers (the wait must be bounded by
``kafka.connect_timeout_seconds``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_drift.pipeline.reference import build_reference
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port

HINT = "(is the broker running? --bootstrap/kafka.bootstrap_servers"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("client-errors")
    events = d / "events.jsonl"
    events.write_text(json.dumps({"model": "m", "features": {"a": 1.0}}) + "\n")
    ref = d / "m.ref.json"
    build_reference({"a": [1.0, 2.0, 3.0, 4.0]}, model="m").save(ref)
    return {"events": events, "reference": ref}


def commands(files: dict[str, Path]) -> dict[str, list[str]]:
    return {
        "produce": ["produce", "--from", str(files["events"])],
        "alerts": ["alerts"],
        "reference publish": ["reference", "publish", str(files["reference"])],
        "worker": ["worker"],
    }


def run_cli(
    args: list[str], bootstrap: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_DRIFT_")}
    clean.update(env or {})
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", *args, "--bootstrap", bootstrap],
        capture_output=True,
        text=True,
        env=clean,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    return done, time.monotonic() - start


def assert_one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> str:
    context = f"\nexit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 2, context
    assert "Traceback" not in done.stderr + done.stdout, context
    assert done.stdout == "", context
    lines = done.stderr.splitlines()
    assert len(lines) == 1, context
    for part in parts:
        assert part in lines[0], context
    return lines[0]


@pytest.mark.parametrize("name", ["produce", "alerts", "reference publish", "worker"])
def test_closed_port_is_one_line_and_exit_2(name: str, files: dict[str, Path]) -> None:
    address = f"127.0.0.1:{find_free_port()}"  # nothing listens there
    done, _ = run_cli(commands(files)[name], address)
    line = assert_one_line_error(done, f"cannot reach Kafka at {address} within 10 s", HINT)
    assert line.startswith("error: cannot reach Kafka at "), line


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A socket that accepts connections and never answers: a hung broker."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.mark.parametrize("name", ["alerts", "worker"])
def test_a_broker_that_never_answers_is_bounded_by_the_connect_timeout(
    name: str, files: dict[str, Path], silent_listener: str
) -> None:
    env = {"STREAM_DRIFT_KAFKA__CONNECT_TIMEOUT_SECONDS": "2"}
    done, took = run_cli(commands(files)[name], silent_listener, env)
    assert_one_line_error(done, f"cannot reach Kafka at {silent_listener} within 2 s", HINT)
    assert took < 2 + 15, f"took {took:.1f} s"  # 2 s wait + interpreter start-up


def test_a_bad_bootstrap_value_is_one_line() -> None:
    done, _ = run_cli(["alerts"], "kafka://127.0.0.1:9092")
    assert_one_line_error(done, "error: --bootstrap 'kafka://127.0.0.1:9092': ")


def test_an_unloadable_ca_file_is_one_line(files: dict[str, Path]) -> None:
    env = {
        "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SSL",
        "STREAM_DRIFT_KAFKA__SSL_CAFILE": str(files["events"]),  # exists, not PEM
    }
    done, _ = run_cli(["alerts"], f"127.0.0.1:{find_free_port()}", env)
    assert_one_line_error(done, "kafka.ssl_cafile: cannot be loaded as PEM")


@pytest.mark.kafka
@pytest.mark.parametrize("name", ["alerts", "worker"])
def test_sasl_refused_by_the_broker_is_one_line_without_the_password(
    name: str, files: dict[str, Path], kafka_broker: EmbeddedBroker
) -> None:
    """The embedded broker has no SASL: the handshake fails. The error is one line, and the
    password appears nowhere in the output, even with debug logging."""
    password = "pw-never-shown-5150"
    env = {
        "STREAM_DRIFT_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAM_DRIFT_KAFKA__SASL_MECHANISM": "PLAIN",
        "STREAM_DRIFT_KAFKA__SASL_USERNAME": "drift",
        "STREAM_DRIFT_KAFKA__SASL_PASSWORD": password,
        "STREAM_DRIFT_KAFKA__CONNECT_TIMEOUT_SECONDS": "5",
        "STREAM_DRIFT_WORKER__LOG_LEVEL": "debug",
    }
    done, _ = run_cli(commands(files)[name], kafka_broker.bootstrap_servers, env)
    line = assert_one_line_error(done, f"cannot reach Kafka at {kafka_broker.bootstrap_servers}")
    assert "Sasl" in line, line  # the broker's answer is named
    assert password not in done.stdout + done.stderr
