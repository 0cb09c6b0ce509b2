"""Run a worker as a child process: for the demo, the tests and the benchmarks.

The worker is started with the same interpreter (``python -m stream_drift.cli worker``), its
settings written to a YAML file (all but ``kafka.sasl_password``, which goes to the child's
environment only), its output to a log file; it is stopped by its PID (SIGTERM, then SIGKILL),
never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from stream_drift.config import Settings


class WorkerError(RuntimeError):
    """A worker that died or did not become ready; the message carries its log tail."""


class WorkerProcess:
    """One ``stream-drift worker`` child process.

    Parameters
    ----------
    settings
        The worker's settings (bootstrap servers must be a real address).
    workdir
        Where its config and log files go.
    name
        Used in file names and messages.
    """

    def __init__(self, settings: Settings, workdir: Path, name: str = "worker") -> None:
        self.settings = settings
        self.workdir = Path(workdir)
        self.name = name
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.web.host}:{self.settings.web.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.settings.to_yaml(), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_DRIFT_")}
        env["PYTHONUNBUFFERED"] = "1"
        password = self.settings.kafka.sasl_password
        if password is not None:  # to_yaml() never writes it: hand it over in the environment
            env["STREAM_DRIFT_KAFKA__SASL_PASSWORD"] = password.get_secret_value()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream_drift.cli", "worker", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        return self

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        """HTTP GET on the worker's web port: (status, body)."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def health(self) -> dict[str, Any]:
        try:
            _, body = self.get("/health")
            data = json.loads(body)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def metrics_text(self) -> str:
        return self.get("/metrics")[1].decode()

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until both stages own partitions and references are loaded."""
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if not self.is_running():
                raise WorkerError(f"{self.name} exited early:\n{self.log_tail()}")
            health = self.health()
            if (
                health.get("references_ready")
                and "ingest_partitions" in health
                and "stage2_partitions" in health
            ):
                return health
            time.sleep(0.2)
        raise WorkerError(
            f"{self.name} not ready after {timeout:.0f} s (health {health}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
