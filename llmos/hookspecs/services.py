"""Hook specs, group 5: services the core asks one plugin for.

Part of the llmos plugin contract; read :mod:`llmos.hookspecs` first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos import hookspec


@hookspec
def llmos_open_registry(url: str | None, home: Path | None, notify: Callable[..., Any] | None) -> Any:
    """Open the **registry** (model versions, aliases, runs) for :func:`llmos.sdk.open_registry`.

    The core stores nothing itself: the pipeline runner, ``llmos run``/``llmos runs`` and
    the stages reach the registry through this hook. The standard plugin llmos-registry
    implements it over SQLAlchemy (SQLite by default, PostgreSQL by URL); its
    ``llmos_registry.Registry`` is the reference for the methods a registry has.

    Unlike the other hooks this is a *service*: plugins are asked in name order, the
    first result that is not ``None`` is used, and its errors (a bad URL, a database that
    cannot be reached) reach the caller. Return ``None`` for a URL you do not serve.

    :param url: the database URL asked for; ``None``: your default (llmos-registry's is
        ``$LLMOS_DATABASE_URL``, else SQLite in the home).
    :param home: the llmos home (blobs, checkouts); ``None``: ``$LLMOS_HOME``.
    :param notify: ``notify(hook_name, **kwargs)`` to call after a version is registered
        or an alias moves (``llmos_after_version_registered``, ``llmos_after_alias_moved``);
        ``None``: the process-wide plugin manager's.
    :returns: a registry object, or ``None``.

    Example::

        @hookimpl
        def llmos_open_registry(url, home, notify):
            if url and url.startswith("s3+sqlite://"):
                return S3Registry(url, home, notify=notify)
            return None
    """
