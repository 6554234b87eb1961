"""llmos-registry, the standard registry plugin: model versions in a content-addressed
blob store, aliases, tags, metrics, lineage and runs, in one SQL database.

The core reaches it through ``llmos_open_registry`` (``llmos.sdk.open_registry``); code
that needs this SQL registry itself (its schema, ``Registry`` methods) imports it here::

    from llmos_registry import open_registry
    reg = open_registry()                # $LLMOS_DATABASE_URL or SQLite in $LLMOS_HOME
    v = reg.register_version("quickstart", "out/model", metrics={"val_ppl": 41.2})
    reg.set_alias("quickstart", "production", v.number)
    path = reg.checkout("quickstart@production")

See DESIGN.md §7 "Registry API". Importing this package is cheap: SQLAlchemy is
imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos_registry.api import Registry
    from llmos_registry.types import RunInfo, VersionInfo

__all__ = ["open_registry", "Registry", "VersionInfo", "RunInfo", "parse_ref", "check_name", "check_alias"]


def open_registry(
    url: str | None = None, home: Path | str | None = None, *, notify: Callable[..., Any] | None = None
) -> Registry:
    """Open the registry (applying migrations on first use).

    :param url: SQLAlchemy URL; default ``$LLMOS_DATABASE_URL`` or ``sqlite:///<home>/llmos.db``.
    :param home: directory of the blob store and checkouts; default ``$LLMOS_HOME``.
    :param notify: ``notify(hook_name, **kwargs)``, called after a version is registered or
        an alias moves (e.g. a plugin manager's ``notify``); default: the process-wide
        plugin manager's.
    """
    from llmos_registry.api import Registry

    return Registry(url, home, notify=notify)


def __getattr__(name: str) -> Any:
    if name == "Registry":
        from llmos_registry.api import Registry

        return Registry
    if name in ("RunInfo", "VersionInfo"):  # dataclasses: built on first use, not when plugins load
        from llmos_registry import types

        return getattr(types, name)
    if name in ("parse_ref", "check_name", "check_alias"):
        from llmos_registry import refs

        return getattr(refs, name)
    raise AttributeError(name)
