"""The package's import rules (DESIGN §7), enforced on the source.

- ``stats`` imports nothing of ours (``test_stats_layering.py``);
- ``config`` imports ``stats`` only; ``pipeline`` imports ``stats`` and ``config`` only;
- only ``app/`` and ``tools/`` know Faust, mode, aiokafka and prometheus_client; kafka-python
  and prometheus_client also ``client.py`` (the emitter counts its sends in the service's
  registry);
- nothing imports ``tools/`` but ``tools/`` itself and ``cli.py``;
- no import cycle between modules;
- ``stream-drift --help`` does not load the heavy libraries: the CLI imports a command's
  module inside the command.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import stream_drift

PACKAGE = Path(stream_drift.__file__).parent
STREAMING = ("faust", "mode", "aiokafka", "prometheus_client", "confluent_kafka")
KAFKA_PYTHON = ("kafka",)
# The service-side emitter may count what it sends in the service's own registry.
CLIENT_STREAMING = tuple(m for m in STREAMING if m != "prometheus_client")
HEAVY = ("scipy", "pyarrow", "faust", "aiokafka", "prometheus_client", "kafka", "numpy", "rich")

# Which of our packages each layer may import (besides itself).
ALLOWED = {
    "stats": {"stats"},
    "config": {"stats", "config"},
    "pipeline": {"stats", "config", "pipeline"},
    "client": {"stats", "config", "pipeline", "client"},
    "app": {"stats", "config", "pipeline", "app"},
    "tools": {"stats", "config", "pipeline", "app", "client", "tools"},
    "cli": {"stats", "config", "pipeline", "app", "client", "tools", "cli"},
}


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, *, top_level_only: bool) -> Iterator[str]:
    """Absolute names imported by a module: everywhere, or only when it is imported at run time
    (module level, not under ``TYPE_CHECKING``)."""
    package = module if module.count(".") and _is_package(module) else module.rsplit(".", 1)[0]

    def visit(nodes: list[ast.stmt]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                yield base
                yield from (f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                if not top_level_only:
                    yield from visit(node.body)
                yield from visit(node.orelse)
            elif top_level_only and isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                if isinstance(node, ast.ClassDef):
                    yield from visit(node.body)
            else:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        yield from visit([child])

    yield from visit(tree.body if isinstance(tree, ast.Module) else [])


def _is_package(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in SOURCES}


def _ours(names: Iterator[str]) -> set[str]:
    """The project modules among imported names (``from pkg import mod`` counts as ``pkg.mod``
    when that is a module, else as ``pkg``)."""
    found = set()
    for name in names:
        if not _under(name, ("stream_drift",)):
            continue
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        found.add(name)
    return found


def test_the_scan_sees_every_layer() -> None:
    layers = {_layer(m) for m in MODULES}
    assert {"stats", "config", "pipeline", "app", "tools", "cli", "client"} <= layers


@pytest.mark.parametrize("module", sorted(MODULES), ids=sorted(MODULES))
def test_module_imports_only_what_its_layer_may(module: str) -> None:
    layer = _layer(module)
    names = list(_imports(MODULES[module], module, top_level_only=False))
    if layer != "root":
        ours = {_layer(m) for m in _ours(iter(names))} - {"root"}
        assert ours <= ALLOWED[layer], f"{module} imports {sorted(ours - ALLOWED[layer])}"
    if layer not in ("app", "tools"):
        streaming = STREAMING if layer != "client" else CLIENT_STREAMING
        assert [n for n in names if _under(n, streaming)] == []
    if layer not in ("app", "tools", "client"):
        assert [n for n in names if _under(n, KAFKA_PYTHON)] == []


def test_no_import_cycle() -> None:
    graph = {m: _ours(_imports(tree, m, top_level_only=True)) - {m} for m, tree in MODULES.items()}
    seen: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is not a cycle of concepts.
            if nxt.startswith(node + "."):
                continue
            if seen.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt not in seen:
                visit(nxt, [*path, node])
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [])


def test_the_rules_would_catch_an_offender() -> None:
    tree = ast.parse(
        "from stream_drift.tools.demo import run_demo\nimport faust\n"
        "if TYPE_CHECKING:\n    from stream_drift.app import x\n"
        "def f():\n    from . import evaluator\n"
    )
    everywhere = set(_imports(tree, "stream_drift.pipeline.ingest", top_level_only=False))
    assert {"stream_drift.tools.demo", "faust", "stream_drift.app", "stream_drift.pipeline"} <= (
        everywhere
    )
    assert "stream_drift.pipeline.evaluator" in everywhere
    at_run_time = set(_imports(tree, "stream_drift.pipeline.ingest", top_level_only=True))
    assert "stream_drift.app" not in at_run_time
    assert "stream_drift.pipeline.evaluator" not in at_run_time


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    code = (
        "import json, sys\nfrom stream_drift import cli\n"
        "sys.argv = ['stream-drift', '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "stream_drift.cli" in loaded
    assert [m for m in loaded if _under(m, HEAVY)] == []
