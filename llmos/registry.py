"""The registry as the core sees it: :func:`open_registry` asks the registry plugin.

The core keeps no database of its own. Model versions, aliases and runs live in
whatever the installed registry plugin provides through ``llmos_open_registry``
(:mod:`llmos.hookspecs.services`); the standard one is llmos-registry (SQLAlchemy:
SQLite in ``$LLMOS_HOME`` by default, PostgreSQL by ``$LLMOS_DATABASE_URL``), whose
``llmos_registry.Registry`` documents the methods::

    from llmos.sdk import open_registry
    reg = open_registry()
    v = reg.register_version("quickstart", "out/model", metrics={"val_ppl": 41.2})
    reg.set_alias("quickstart", "production", v.number)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.errors import LlmosError

INSTALL_HINT = "install the standard registry plugin (pip install llmos-registry) or enable it (llmos plugin list)"


def open_registry(url: str | None = None, home: Path | str | None = None, *,
                  notify: Callable[..., Any] | None = None) -> Any:
    """Open the registry of the installed registry plugin.

    :param url: database URL; default: the plugin's (``$LLMOS_DATABASE_URL``, else SQLite
        in the home).
    :param home: the llmos home; default ``$LLMOS_HOME``.
    :param notify: ``notify(hook_name, **kwargs)`` called after a version is registered or
        an alias moves (e.g. a plugin manager's ``notify``); default: the process-wide
        plugin manager's.
    :raises LlmosError: no installed, enabled plugin opens a registry (for ``url``).
    """
    from llmos.plugins import get_manager

    found = get_manager().first_result("llmos_open_registry", url=url,
                                       home=Path(home) if home is not None else None, notify=notify)
    if found is None:
        import os

        what = "a registry" if url is None else "this registry URL (see llmos plugin list)"
        allowed = os.environ.get("LLMOS_PLUGINS")
        hint = (f"LLMOS_PLUGINS={allowed!r} leaves the registry plugin out: add llmos-registry to it"
                if allowed is not None else INSTALL_HINT)
        raise LlmosError(f"no plugin opens {what}: {hint}")
    return found[1]
