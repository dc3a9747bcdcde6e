"""Shared fixtures for the tests of the deployment checks."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import check_chart  # noqa: E402


@pytest.fixture(scope="session")
def server() -> check_chart.Server:
    binary = Path(os.environ.get("PEERBRIDGE_BIN", check_chart.DEFAULT_BINARY))
    return check_chart.Server.load(binary, check_chart.DEFAULT_OPENAPI)


@pytest.fixture
def chart_copy(tmp_path_factory: pytest.TempPathFactory):
    """Returns a function that copies the chart to a temp dir and applies text edits.

    Each edit is (file relative to the chart, old text, new text); the old text must be
    present, so a chart change cannot silently turn a mutation test into a no-op.
    """

    def make(*edits: tuple[str, str, str]) -> Path:
        dst = tmp_path_factory.mktemp("chart") / "peerbridge"
        shutil.copytree(check_chart.CHART_DIR, dst)
        for rel, old, new in edits:
            f = dst / rel
            text = f.read_text()
            assert old in text, f"mutation target {old!r} not found in {rel}"
            f.write_text(text.replace(old, new, 1))
        return dst

    return make
