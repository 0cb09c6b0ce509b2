"""The committed locks pin a full, consistent dependency set that honours pyproject's ranges.

CI and the README's test command install from ``requirements-test.txt``; the container
image (and anyone who wants the exact tested set) from ``requirements.txt``.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(path: Path) -> dict[str, Version]:
    out: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, ver = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned with =="
        out[canonicalize_name(name)] = Version(ver.split(";")[0].strip())
    return out


def requirements(*extras: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        for r in PROJECT["optional-dependencies"][extra]:
            req = Requirement(r)
            if canonicalize_name(req.name) != "stream-drift":
                reqs.append(req)
    return reqs


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.txt", ()), ("requirements-test.txt", ("test", "deploy"))],
)
def test_lock_satisfies_pyproject(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(ROOT / lock)
    for req in requirements(*extras):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{lock} lacks {req.name}"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {req.name}=={pinned[name]}, outside pyproject's {req.specifier}"
        )


def test_runtime_lock_is_the_test_lock_minus_test_tools() -> None:
    runtime, test = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-test.txt")
    differing = {n: (v, test.get(n)) for n, v in runtime.items() if test.get(n) != v}
    assert not differing, f"runtime and test locks disagree: {differing}"


def test_this_environment_was_installed_from_the_lock() -> None:
    """What CI runs with is what the lock says (the README command installs from it)."""
    wrong = {}
    for name, pinned in pins(ROOT / "requirements-test.txt").items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong[name] = (pinned, None)
            continue
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert not wrong, f"installed versions differ from requirements-test.txt: {wrong}"
