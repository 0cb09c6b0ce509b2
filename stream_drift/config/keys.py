"""Dotted settings keys: which exist, what type each expects, the closest one to a typo.

Used by :meth:`Settings.override` (``"web.port"``), by the check of the ``STREAM_DRIFT_*``
variables (pydantic-settings ignores a variable that names no setting; here it is an error
with a suggestion) and by the error report.

Examples
--------
>>> from stream_drift.config.settings import Settings
>>> resolve_key(Settings, ["web", "port"])
<class 'int'>
>>> try:
...     resolve_key(Settings, ["web", "prot"])
... except BadKey as exc:
...     print(exc)
unknown key 'prot' in web; did you mean 'port'?
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel

from stream_drift.config.base import SECTION_PATH, is_model

__all__ = ["BadKey", "env_names", "non_null", "resolve_key", "suggest", "unwrap"]


def unwrap(tp: Any, meta: Sequence[Any] = ()) -> tuple[Any, tuple[Any, ...]]:
    """Strip ``Annotated`` layers, collecting their metadata."""
    collected = tuple(meta)
    while get_origin(tp) is Annotated:
        base, *extra = get_args(tp)
        tp, collected = base, collected + tuple(extra)
    return tp, collected


def non_null(tp: Any) -> Any:
    """``X`` for ``X | None``; ``tp`` unchanged otherwise."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def suggest(word: str, candidates: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class BadKey(Exception):
    """A key path that names no setting: why, and a suggested sibling key (or ``""``)."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason + hint)
        self.reason = reason


def resolve_key(root: type[BaseModel], parts: Sequence[str]) -> Any:
    """The annotation at a key path below ``root``; raises :class:`BadKey` when the path is
    invalid.

    A path may stop at a section (its value is then a mapping), at a leaf, or one level below
    a mapping-valued leaf (one entry of ``decision.thresholds``).
    """
    model = root
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = f"in {SECTION_PATH[model]}" if model in SECTION_PATH else "at the top level"
            raise BadKey(f"unknown key {part!r} {where}", suggest(part, list(model.model_fields)))
        rest = parts[index + 1 :]
        if is_model(field.annotation):
            model = field.annotation
            continue
        tp = non_null(unwrap(field.annotation)[0])
        if get_origin(tp) is dict and len(rest) == 1:
            return unwrap(get_args(tp)[1])[0]
        if rest:
            raise BadKey(f"{part!r} is a single value, not a section")
        return field.annotation
    return model


def env_names(root: type[BaseModel], prefix: str) -> list[str]:
    """Every variable name that sets one value (leaves and mapping entries)."""
    names: list[str] = []

    def walk(model: type[BaseModel], start: str) -> None:
        for name, field in model.model_fields.items():
            var = f"{start}{name.upper()}"
            if is_model(field.annotation):
                walk(field.annotation, var + "__")
                continue
            names.append(var)
            tp = non_null(unwrap(field.annotation)[0])
            if get_origin(tp) is dict:
                key_type = unwrap(get_args(tp)[0])[0]
                names.extend(f"{var}__{k.upper()}" for k in get_args(key_type))

    walk(root, prefix)
    return names
