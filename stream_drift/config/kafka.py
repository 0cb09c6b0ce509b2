"""The ``kafka`` settings: where the brokers are, client timeouts, TLS and SASL.

Examples
--------
>>> KafkaSettings(bootstrap_servers="k1:9092, k2:9092").servers
('k1:9092', 'k2:9092')
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, Strict

from stream_drift.config.base import (
    ConfigError,
    Expected,
    NonEmptyStr,
    PositiveFloat,
    PositiveInt,
    Secret,
    Section,
    upper,
)

__all__ = ["KafkaSettings"]

_EMBEDDED = "embedded"
_SERVER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")


def _check_servers(value: str) -> str:
    if value == _EMBEDDED:
        return value
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        match = _SERVER.fullmatch(entry)
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            raise ValueError(f"invalid server {entry!r}")
    return value


SecurityProtocol = Annotated[
    Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], BeforeValidator(upper)
]
SaslMechanism = Annotated[
    Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], BeforeValidator(upper)
]


class KafkaSettings(Section):
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
        Expected("'embedded' or comma-separated host:port pairs (port 1-65535, no scheme)"),
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
        (the Faust app gets the same through
        :func:`stream_drift.app.faust_config.faust_settings`), so one setting secures all of
        them. The dict holds the SASL password: never log it.

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
