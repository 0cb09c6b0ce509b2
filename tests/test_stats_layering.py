"""The stats package is pure numpy/scipy: no Faust, Kafka, Prometheus or I/O imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import stream_drift.stats

STATS_DIR = Path(stream_drift.stats.__file__).parent
FORBIDDEN = ("faust", "mode", "aiokafka", "kafka", "confluent_kafka", "prometheus_client")
IO_MODULES = ("socket", "http", "urllib", "requests", "asyncio", "ssl", "aiohttp", "httpx")


def _is_under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def test_importing_stats_loads_no_streaming_or_metrics_library() -> None:
    code = "import json, sys\nimport stream_drift.stats\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout)
    assert "stream_drift.stats" in loaded
    offenders = [m for m in loaded if _is_under(m, FORBIDDEN)]
    assert offenders == []
    # Nothing else of the project comes along either.
    project = {m for m in loaded if m.startswith("stream_drift")}
    assert all(m == "stream_drift" or m.startswith("stream_drift.stats") for m in project)


def _imports(path: Path) -> list[str]:
    """Every module a source file imports (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append(f"stream_drift.stats.{node.module or ''}".rstrip("."))
            else:
                assert node.module is not None
                names.append(node.module)
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return names


SOURCES = sorted(STATS_DIR.glob("*.py"))


def test_the_scan_sees_the_package() -> None:
    stems = {p.stem for p in SOURCES}
    assert {"binning", "histogram", "window", "base", "psi", "ks", "evaluate"} <= stems


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_stats_sources_import_nothing_forbidden(path: Path) -> None:
    imported = _imports(path)
    assert [m for m in imported if _is_under(m, FORBIDDEN)] == []
    assert [m for m in imported if _is_under(m, IO_MODULES)] == []
    # Within the project, only the stats package itself.
    assert [
        m
        for m in imported
        if m.startswith("stream_drift") and not m.startswith("stream_drift.stats")
    ] == []


def test_the_scanner_would_catch_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import faust\nfrom prometheus_client import Counter\nimport urllib.request\n"
        "from kafka.admin import X\n__import__('socket')\nfrom stream_drift import app\n",
        encoding="utf-8",
    )
    imported = _imports(bad)
    assert {"faust", "prometheus_client", "kafka.admin"} <= {
        m for m in imported if _is_under(m, FORBIDDEN)
    }
    assert {"urllib.request", "socket"} <= {m for m in imported if _is_under(m, IO_MODULES)}
    assert "stream_drift" in imported
    # "modest" is not "mode".
    assert not _is_under("modest", FORBIDDEN)
