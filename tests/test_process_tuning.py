"""Process-wide tuning an API process applies when its app is built."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from opensight.api import create_app
from opensight.config import Settings


@pytest.fixture
def restore_switch_interval() -> object:
    saved = sys.getswitchinterval()
    yield
    sys.setswitchinterval(saved)


@pytest.mark.usefixtures("restore_switch_interval")
def test_api_process_gets_the_configured_gil_switch_interval(tmp_path: Path) -> None:
    sys.setswitchinterval(0.005)
    create_app(Settings(data_dir=tmp_path, switch_interval_ms=2.0), workers=0)
    assert sys.getswitchinterval() == pytest.approx(0.002)


@pytest.mark.usefixtures("restore_switch_interval")
def test_zero_keeps_pythons_own_switch_interval(tmp_path: Path) -> None:
    sys.setswitchinterval(0.005)
    create_app(Settings(data_dir=tmp_path, switch_interval_ms=0), workers=0)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_switch_interval_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="switch_interval_ms"):
        Settings(data_dir=tmp_path, switch_interval_ms=-1)
