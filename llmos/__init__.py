"""llmos — a plugin-based operating system for language models.

The core is deliberately small and light: importing :mod:`llmos` imports pluggy
and nothing heavier. Everything that does real work (data, models, training,
compression, serving, monitoring) lives in plugins, loaded from the ``llmos``
entry-point group exactly like community plugins.

Plugins write::

    from llmos import hookimpl

    @hookimpl
    def llmos_register_model_steps(register):
        register("my-model", "my_pkg.models:BuildStep", config=MyConfig,
                 description="A model built from scratch")
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Version of the plugin API (hook specs, component protocol, context).
#: A plugin declares the API it was written for with a module-level
#: ``LLMOS_API = 2``; the core refuses plugins written for an API it does not
#: support (see :data:`SUPPORTED_API_VERSIONS`). API 2 renamed the hooks to one
#: grammar and added the extension points; API-1 plugins still load, their hook
#: names mapped onto API 2's with a deprecation warning
#: (:data:`llmos.plugins.API1_HOOK_NAMES`).
API_VERSION = 2
SUPPORTED_API_VERSIONS = frozenset({1, 2})

#: Marker for hook specifications (used by :mod:`llmos.hookspecs` only).
hookspec = pluggy.HookspecMarker("llmos")
#: Marker plugins use for hook implementations.
hookimpl = pluggy.HookimplMarker("llmos")

__all__ = ["API_VERSION", "SUPPORTED_API_VERSIONS", "__version__", "hookimpl", "hookspec"]
