"""Where installed models live, and whether one is installed.

Layout: ``<model_dir>/<model_id>/<files as named in the spec>`` plus
``opensight-model.json``, the manifest. The manifest is written last (after a
verified pull, or by a test's tiny-model installer), so a model is installed
iff its manifest exists: an interrupted pull never looks installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ModelUnavailable
from .catalog import check_id

MANIFEST_NAME = "opensight-model.json"

_SETTINGS: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Use ``settings`` for every later lookup (the server's); None reads the environment."""
    global _SETTINGS
    _SETTINGS = settings


def current_settings() -> Settings:
    return _SETTINGS if _SETTINGS is not None else Settings()


def model_dir(settings: Settings | None = None) -> Path:
    """The model dir: setting ``model_dir`` (``OPENSIGHT_MODEL_DIR``) or ``<data_dir>/models``."""
    settings = settings or current_settings()
    path = settings.model_dir or settings.data_dir / "models"
    return Path(path).expanduser()


def model_path(model_id: str, settings: Settings | None = None) -> Path:
    return model_dir(settings) / check_id(model_id)


def manifest_path(model_id: str, settings: Settings | None = None) -> Path:
    return model_path(model_id, settings) / MANIFEST_NAME


def is_installed(model_id: str, settings: Settings | None = None) -> bool:
    return manifest_path(model_id, settings).is_file()


def offline() -> bool:
    """Whether huggingface_hub's offline mode is on (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def unavailable(model_id: str) -> ModelUnavailable:
    """The typed error for a missing model; its message always names the pull command."""
    detail = f"model {model_id!r} is not installed; run `opensight models pull {model_id}`"
    if offline():
        detail += (
            " (HF_HUB_OFFLINE is set: pull on a machine with network access and copy "
            f"{model_dir()}/{model_id} here, or unset HF_HUB_OFFLINE)"
        )
    return ModelUnavailable(model_id, detail)


def require(model_id: str, settings: Settings | None = None) -> Path:
    """The installed model's directory, or ``ModelUnavailable`` naming the pull command."""
    if not is_installed(model_id, settings):
        raise unavailable(model_id)
    return model_path(model_id, settings)


def read_manifest(model_id: str, settings: Settings | None = None) -> dict[str, Any] | None:
    try:
        value = json.loads(manifest_path(model_id, settings).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_manifest(
    model_id: str,
    files: Mapping[str, Mapping[str, Any]] | None = None,
    settings: Settings | None = None,
    **fields: Any,
) -> Path:
    """Mark ``model_id`` installed: atomically write its manifest (last step of an install).

    ``files`` maps file name to facts about it (sha256, size_bytes, verified).
    """
    directory = model_path(model_id, settings)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "id": model_id,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {name: dict(info) for name, info in (files or {}).items()},
        **fields,
    }
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    target = directory / MANIFEST_NAME
    os.replace(tmp, target)
    return target


def remove(model_id: str, settings: Settings | None = None) -> bool:
    """Delete the model's directory (manifest first, so a half-deleted model is not installed)."""
    directory = model_path(model_id, settings)
    if not directory.exists():
        return False
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    return True


def disk_size(model_id: str, settings: Settings | None = None) -> int:
    directory = model_path(model_id, settings)
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
