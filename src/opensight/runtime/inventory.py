"""What models exist and which are installed: one view for ``models list`` and ``doctor``."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from . import catalog, store


def describe_models(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every catalog model (installed or not), then installed folders the catalog lacks."""
    rows: list[dict[str, Any]] = []
    for spec in catalog.all_specs():
        row = spec.describe()
        row.update(_install_state(spec.id, settings))
        row["in_catalog"] = True
        row["pull"] = f"opensight models pull {spec.id}"
        rows.append(row)
    known = {row["id"] for row in rows}
    root = store.model_dir(settings)
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.name in known or not (child / store.MANIFEST_NAME).is_file():
                continue
            if not catalog.MODEL_ID_PATTERN.match(child.name):
                continue
            manifest = store.read_manifest(child.name, settings) or {}
            rows.append(
                {
                    "id": child.name,
                    "tasks": list(manifest.get("tasks") or []),
                    "license": manifest.get("license"),
                    "backend": manifest.get("backend"),
                    "size_mb": None,
                    "repo": manifest.get("repo"),
                    "revision": manifest.get("revision"),
                    "verified": bool(manifest.get("verified")),
                    "description": "installed, not in the catalog",
                    "files": [],
                    "in_catalog": False,
                    **_install_state(child.name, settings),
                }
            )
    return rows


def _install_state(model_id: str, settings: Settings | None) -> dict[str, Any]:
    installed = store.is_installed(model_id, settings)
    state: dict[str, Any] = {"installed": installed, "path": None, "disk_mb": None}
    if installed:
        state["path"] = str(store.model_path(model_id, settings))
        state["disk_mb"] = round(store.disk_size(model_id, settings) / 1e6, 3)
        manifest = store.read_manifest(model_id, settings) or {}
        state["installed_verified"] = bool(manifest.get("verified"))
    return state
