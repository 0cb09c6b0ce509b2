"""``load_settings``: the YAML file, then the ``STREAM_DRIFT_*`` variables, validated once.

pydantic-settings merges the sources (a variable beats the file, key by key; ``__``
separates levels, names are case-insensitive). Two things are added here: a variable with
the prefix that names no setting is an error (with the closest name), and each variable's
text is read as its key expects: strings verbatim, lists as YAML/JSON flow (``["a", "b"]``)
or comma-separated, everything else (numbers, booleans, ``null``, mappings) as YAML.

Examples
--------
>>> load_settings(env={"STREAM_DRIFT_DECISION__THRESHOLDS__KS": "0.1"}).decision.thresholds
{'ks': 0.1}
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, InitSettingsSource

from stream_drift.config.base import ConfigError
from stream_drift.config.keys import BadKey, env_names, non_null, resolve_key, unwrap
from stream_drift.config.report import problem_lines
from stream_drift.config.settings import ENV_PREFIX, Settings
from stream_drift.config.yaml_io import YAMLError, parse_yaml, read_yaml_file

__all__ = ["load_settings"]


class _FileSource(InitSettingsSource):
    """The settings file, read with YAML 1.2 rules; a duplicate key is an error."""

    def __init__(self, path: Path) -> None:
        super().__init__(Settings, read_yaml_file(path))


class _EnvSource(EnvSettingsSource):
    """The ``STREAM_DRIFT_*`` variables, checked and parsed already: this source nests them.

    Parameters
    ----------
    parsed
        ``{lower-case variable name: value}``, whole sections and mappings before the keys
        inside them (so the more specific variable wins).
    """

    def __init__(self, parsed: Mapping[str, Any]) -> None:
        super().__init__(Settings, case_sensitive=False)
        self.env_vars = parsed

    def field_is_complex(self, field: FieldInfo) -> bool:
        # Every value is parsed already: hand each to decode_complex_value, which keeps it.
        return True

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        return value


def _parse_env_value(raw: str, annotation: Any) -> Any:
    """A variable's text as the type the key expects (see the module's description)."""
    tp = non_null(unwrap(annotation)[0])
    if tp is str or (get_origin(tp) is Literal and all(isinstance(a, str) for a in get_args(tp))):
        return raw
    if unwrap(tp)[0] in (str, SecretStr):  # optional strings: a password "123" stays text
        return None if raw == "null" else raw
    if get_origin(tp) is tuple:
        text = raw.strip()
        if text.startswith("["):
            return parse_yaml(text)
        return [item.strip() for item in text.split(",")] if text else []
    return parse_yaml(raw)


def _suggest_env(name: str) -> str:
    """``; did you mean STREAM_DRIFT_...?`` for a misspelt variable name, or ``""``."""
    suffixes = {var[len(ENV_PREFIX) :]: var for var in env_names(Settings, ENV_PREFIX)}
    close = difflib.get_close_matches(name[len(ENV_PREFIX) :].upper(), suffixes, n=1, cutoff=0.6)
    return f"; did you mean {suffixes[close[0]]}?" if close else ""


def _read_environment(
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[str]]:
    """The parsed values of the variables that name a setting, the variable behind each key
    path, and a problem line for every other ``STREAM_DRIFT_*`` variable."""
    parsed: list[tuple[int, str, Any]] = []
    origins: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        try:
            if not all(parts):
                raise BadKey("empty key between '__' separators")
            annotation = resolve_key(Settings, parts)
        except BadKey as exc:
            problems.append(f"{name}: not a setting ({exc.reason}){_suggest_env(name)}")
            continue
        try:
            value = _parse_env_value(raw, annotation)
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or "syntax error"
            problems.append(f"{'.'.join(parts)}: cannot parse {raw!r} ({problem}) (from {name})")
            continue
        parsed.append((len(parts), name, value))
        origins[tuple(parts)] = name
    ordered = {name.lower(): value for _, name, value in sorted(parsed, key=lambda p: p[:2])}
    return ordered, origins, problems


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
    file = () if path is None else (_FileSource(Path(path)),)
    parsed, origins, problems = _read_environment(os.environ if env is None else env)
    try:
        settings = Settings.from_sources(_EnvSource(parsed), *file)
    except ValidationError as exc:
        raise ConfigError([*problems, *problem_lines(Settings, exc, origins)]) from None
    if problems:
        raise ConfigError(problems)
    return settings
