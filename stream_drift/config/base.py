"""What every settings model shares: the error type, the field types, the strict base class.

Examples
--------
>>> from pydantic import ValidationError
>>> class Demo(Section):
...     port: PositiveInt = 1
>>> try:
...     Demo(port="80")
... except ValidationError as exc:
...     print(exc.errors()[0]["type"])
int_type
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self, TypeGuard

from annotated_types import Ge, Gt, MinLen
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "Bool",
    "ConfigError",
    "Expected",
    "KafkaName",
    "NonEmptyStr",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Secret",
    "Section",
    "Str",
]


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


class Expected:
    """Annotation marker: the human description of what a value must be, used in errors."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _check_kafka_name(value: str) -> str:
    if not _KAFKA_NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError("not a valid Kafka name")
    return value


def lower(value: object) -> object:
    """A string lower-cased (case-insensitive choices); anything else unchanged."""
    return value.lower() if isinstance(value, str) else value


def upper(value: object) -> object:
    """A string upper-cased (case-insensitive choices); anything else unchanged."""
    return value.upper() if isinstance(value, str) else value


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
    Expected("a Kafka name: 1 to 249 characters from A-Z a-z 0-9 . _ -"),
]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(lower)
]
Secret = Annotated[SecretStr, Strict(), Expected("a string")]
"""A string that is never shown: not by ``repr``, ``Settings.to_yaml`` or an error."""

SECTION_PATH: dict[type[BaseModel], str] = {}
"""Dotted path of every section class inside ``Settings``, filled in once it is defined."""


def is_model(tp: Any) -> TypeGuard[type[BaseModel]]:
    """``True`` for a pydantic model class (a settings section)."""
    return isinstance(tp, type) and issubclass(tp, BaseModel)


class Section(BaseModel):
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
        prefix = SECTION_PATH.get(type(self), "")
        return f"{prefix}.{name}" if prefix else name


def _is_section_key(cls: type[BaseModel], key: object) -> bool:
    field = cls.model_fields.get(key) if isinstance(key, str) else None
    return field is not None and is_model(field.annotation)


def register_sections(model: type[BaseModel], prefix: str = "") -> None:
    """Record where each section class sits, so cross-key errors name the full dotted key."""
    for name, field in model.model_fields.items():
        if is_model(field.annotation):
            path = f"{prefix}.{name}" if prefix else name
            SECTION_PATH[field.annotation] = path
            register_sections(field.annotation, path)
