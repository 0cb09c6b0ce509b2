"""The README's model-quality sections promise only what works: their settings load, their
commands run."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stream_drift.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Labels and model quality", "Multivariate drift")


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, flags=re.M | re.S)


@pytest.mark.parametrize("title", SECTIONS)
def test_every_settings_snippet_loads(title: str, tmp_path: Path) -> None:
    blocks = _blocks(_section(title), "yaml")
    assert blocks, title
    for i, block in enumerate(blocks):
        path = tmp_path / f"snippet{i}.yaml"
        path.write_text(block)
        settings = load_settings(path, env={})
        assert settings.model_dump(mode="json")  # loads and validates


def test_the_labels_snippet_turns_the_join_on_with_equal_partitions(tmp_path: Path) -> None:
    [block, *_] = _blocks(_section("Labels and model quality"), "yaml")
    path = tmp_path / "labels.yaml"
    path.write_text(block)
    settings = load_settings(path, env={})
    assert settings.labels.enabled
    assert settings.topics.partitions.events == settings.topics.partitions.labels


def test_the_reference_build_command_keeps_a_row_sample(tmp_path: Path) -> None:
    [block] = _blocks(_section("Multivariate drift"), "bash")
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:3] == ["stream-drift", "reference", "build"]
    argv = [arg if not arg.startswith("examples/") else str(ROOT / arg) for arg in argv[1:]]
    proc = subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    profile = json.loads((tmp_path / "fraud.ref.json").read_text())
    assert len(profile["sample"]["rows"]) == 1000
    assert "score" not in profile["sample"]["features"]  # the prediction is not a feature
