"""Where llmos keeps its state, and the small settings file.

- Home: ``$LLMOS_HOME``, else the per-user data directory (``~/.local/share/llmos``
  on Linux, via ``platformdirs`` conventions without importing it).
- Database: ``$LLMOS_DATABASE_URL``, else ``sqlite:///<home>/llmos.db`` (resolved by
  the registry plugin, llmos-registry, for the home it is given).
- Settings: ``<home>/settings.json`` — the persisted list of disabled plugins.
  A plain JSON file (not the database) so that loading plugins stays fast and
  works even when the database is unreachable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def home() -> Path:
    """The llmos home directory (created on first use)."""
    env = os.environ.get("LLMOS_HOME")
    if env:
        path = Path(env).expanduser()
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "llmos"
    elif os.name == "nt":
        path = Path(os.environ.get("LOCALAPPDATA", Path.home())) / "llmos"
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "llmos"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _settings_path() -> Path:
    return home() / "settings.json"


def load_settings() -> dict[str, Any]:
    """Read ``settings.json``; a missing file means defaults."""
    path = _settings_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        from llmos.errors import LlmosError

        raise LlmosError(
            f"cannot read {path}: {exc}; fix or delete the file to reset llmos settings"
        ) from exc
    return data if isinstance(data, dict) else {}


def save_settings(settings: dict[str, Any]) -> None:
    """Write ``settings.json`` atomically (temp file + rename)."""
    import tempfile

    path = _settings_path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(settings, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
