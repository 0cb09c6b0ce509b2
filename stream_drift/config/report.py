"""The error report: a pydantic ``ValidationError`` as one line per problem.

Each line names the dotted key, what the value must be (in words, from the key's type) and
what was given, then where it came from when that was an environment variable, e.g.
``web.port: must be an integer >= 1 and <= 65535, got 'http' (from STREAM_DRIFT_WEB__PORT)``.
A secret's value is never shown.

Examples
--------
>>> from stream_drift.config.settings import Settings
>>> validate(Settings, {"web": {"port": 0}}, [], {("web", "port"): "STREAM_DRIFT_WEB__PORT"})
Traceback (most recent call last):
...
stream_drift.config.base.ConfigError: web.port: must be an integer >= 1 and <= 65535, got 0 \
(from STREAM_DRIFT_WEB__PORT)
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel, SecretStr, ValidationError

from stream_drift.config.base import SECTION_PATH, ConfigError, Expected, is_model
from stream_drift.config.keys import non_null, suggest, unwrap

__all__ = ["Sources", "validate"]

Sources = Mapping[tuple[str, ...], str]
"""The environment variable that set each key path (keys set by the file are absent)."""

M = TypeVar("M", bound=BaseModel)


def _describe(tp: Any, meta: Sequence[Any] = ()) -> str:
    """What a value of annotation ``tp`` must be, in words, e.g. ``an integer > 0``."""
    tp, meta = unwrap(tp, meta)
    for item in meta:
        if isinstance(item, Expected):
            return item.text
    if non_null(tp) is not tp:
        return f"{_describe(non_null(tp))}, or null"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list, each item {_describe(get_args(tp)[0])}"
    if origin is dict:
        key, value = get_args(tp)
        return f"a mapping, each key {_describe(key)} and each value {_describe(value)}"
    if is_model(tp):
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


def _annotation_at(
    root: type[BaseModel], loc: Sequence[int | str]
) -> tuple[Any, tuple[Any, ...]] | None:
    """The annotation (and metadata) of the value at a pydantic error location."""
    tp: Any = root
    meta: tuple[Any, ...] = ()
    for part in loc:
        tp, meta = unwrap(non_null(unwrap(tp, meta)[0]), ())
        if part == "[key]":  # the key of the mapping entry just walked into
            return None
        if is_model(tp):
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


def _source(loc: Sequence[int | str], sources: Sources) -> str:
    key = tuple(str(p) for p in loc)
    for end in range(len(key), 0, -1):
        if key[:end] in sources:
            return f" (from {sources[key[:end]]})"
    return ""


def problem_lines(root: type[BaseModel], exc: ValidationError, sources: Sources) -> list[str]:
    """One line per error of ``exc`` (a validation of ``root``)."""
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
            lines.append(f"{_dotted(loc)}: unknown key{_unknown_hint(root, loc)}{where}")
            continue
        if loc and loc[-1] == "[key]":
            parent = _annotation_at(root, loc[:-2])
            expected = "a valid key"
            if parent is not None:
                mapping = non_null(unwrap(*parent)[0])
                if get_origin(mapping) is dict:
                    expected = _describe(get_args(mapping)[0])
            lines.append(
                f"{_dotted(loc[:-2])}: every key must be {expected}, got {_show(err['input'])}"
                f"{where}"
            )
            continue
        found = _annotation_at(root, loc)
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
    return unwrap(non_null(unwrap(tp)[0]))[0] is SecretStr


def _unknown_hint(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    """``; did you mean 'x'?`` for a misspelt key: a sibling, or a key elsewhere."""
    found = _annotation_at(root, loc[:-1])
    if found is None or not is_model(found[0]):
        return ""
    key = str(loc[-1])
    siblings = list(found[0].model_fields)
    hint = suggest(key, siblings)
    if hint:
        return hint
    elsewhere = {
        f"{path}.{name}": name
        for model, path in SECTION_PATH.items()
        for name in model.model_fields
    }
    elsewhere.update({name: name for name in root.model_fields})
    close = difflib.get_close_matches(key, list(elsewhere.values()), n=1, cutoff=0.8)
    if close:
        full = next(path for path, name in elsewhere.items() if name == close[0])
        return f"; did you mean {full!r}?"
    return f"; valid keys: {', '.join(siblings)}"


def validate(root: type[M], data: Any, problems: Sequence[str], sources: Sources) -> M:
    """``data`` validated as ``root``.

    Raises
    ------
    ConfigError
        ``problems`` (found before validating), then one line per validation error.
    """
    try:
        model = root.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([*problems, *problem_lines(root, exc, sources)]) from None
    if problems:
        raise ConfigError(problems)
    return model
