"""Generate the hook reference (``docs/hooks.md``) from :mod:`llmos.hookspecs`.

``python -m llmos.hookdocs > docs/hooks.md``. A test keeps the file in sync
with the specs, so the documentation can never drift from the code.
"""

from __future__ import annotations

import inspect

from llmos import hookspecs
from llmos.components import EXTENSION_HOOKS, STAGE_HOOKS


def hook_names() -> list[str]:
    """Every hook spec, in reading order: group by group, each in the order of its module."""
    return [n for group in hookspecs.GROUPS for n, f in vars(group).items()  # definition order
            if n.startswith("llmos_") and inspect.isfunction(f)]


def signature(name: str) -> str:
    params = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(params)})"


def render() -> str:
    stage_of = {hook: stage for stage, hook in STAGE_HOOKS.items()}
    kind_of = {hook: kind for kind, hook in EXTENSION_HOOKS.items()}
    out = [
        "# Hook reference",
        "",
        "Generated from `llmos/hookspecs/` by `python -m llmos.hookdocs`; do not edit by hand.",
        "Implementations may accept any subset of a hook's arguments.",
        "",
    ]
    for name in hook_names():
        doc = inspect.cleandoc(getattr(hookspecs, name).__doc__ or "")
        out.append(f"## `{signature(name)}`")
        out.append("")
        if name in stage_of:
            out.append(f"*Provider hook of the **{stage_of[name]}** stage's steps.*")
            out.append("")
        if name in kind_of:
            out.append(f"*Extension point: kind **`{kind_of[name]}`** "
                       f"(`manager.extensions({kind_of[name]!r})`, `llmos components --kind {kind_of[name]}`).*")
            out.append("")
        out.append(doc)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
