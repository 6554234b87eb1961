"""The plugin's command groups, assembled: ``llmos model`` (with ``export``) and ``llmos db``."""

from __future__ import annotations

from llmos_registry.cli.db import db
from llmos_registry.cli.model import model
from llmos_registry.cli.model_export import export

model.add_command(export)

__all__ = ["db", "model"]
