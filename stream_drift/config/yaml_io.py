"""YAML for the settings, on ruamel.yaml: YAML 1.2 scalars, duplicate keys are errors.

Only ``true``/``false`` are booleans (``on``, ``no``, ``yes`` stay strings), ``1e-3`` is a
number, dates and sexagesimal numbers (``10:30``) are strings. Writing quotes every string
that a YAML 1.1 reader (PyYAML and most tools) would take for something else, so a written
file reads the same everywhere.

Examples
--------
>>> parse_yaml("[no, on, 1e-3, 2024-01-01]")
['no', 'on', 0.001, '2024-01-01']
>>> print(dump_yaml({"host": "no", "port": 1}), end="")
host: 'no'
port: 1
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import SafeRepresenter
from ruamel.yaml.resolver import VersionedResolver

from stream_drift.config.base import ConfigError

__all__ = ["YAMLError", "dump_yaml", "parse_yaml", "read_yaml_file"]

_STR = "tag:yaml.org,2002:str"


class _Constructor(SafeConstructor):
    """Safe constructor reading timestamps as the strings they are written as."""


# ruamel keeps YAML 1.1's timestamps under 1.2; a date in a settings file is just text.
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)

_YAML11 = VersionedResolver(version=(1, 1))
# Control characters, and the line/paragraph separators and BOM some readers take as breaks.
_NEEDS_ESCAPES = re.compile(
    r"[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)


def _represent_str(representer: SafeRepresenter, data: str) -> ScalarNode:
    style = None
    if _NEEDS_ESCAPES.search(data):
        style = '"'
    elif _YAML11.resolve(ScalarNode, data, (True, False)) != _STR:
        style = "'"
    return representer.represent_scalar(_STR, data, style=style)


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _Constructor
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.representer.add_representer(str, _represent_str)
    return yaml


def parse_yaml(text: str) -> Any:
    """The value of a YAML document.

    Raises
    ------
    YAMLError
        Invalid YAML, or a duplicate key.
    """
    return _yaml().load(text)


def dump_yaml(data: Any) -> str:
    """``data`` as a block-style YAML document."""
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def read_yaml_file(path: Path) -> dict[str, Any]:
    """The mapping held by a settings file (empty for an empty file).

    Raises
    ------
    ConfigError
        One line naming the file (and the line and column of a YAML error).
    """
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read configuration file: {exc.strerror}"]) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        if isinstance(exc, DuplicateKeyError):
            found = re.match(r'found duplicate key "(.*)" with value', problem)
            problem = f"duplicate key {found.group(1)!r}" if found else problem
        raise ConfigError([f"{path}{where}: invalid YAML: {problem}"]) from exc
    except YAMLError as exc:
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
