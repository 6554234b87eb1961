"""Rules on in-tree (standard) plugins: each release rebuilt from its git tree.

Part of ``llmos index check`` (:mod:`llmos_community.check`).
"""

from __future__ import annotations

from collections.abc import Iterator

from llmos_community import names
from llmos_community.check.checker import Checker, rule
from llmos_community.index import Problem


_BUILT: dict[tuple[str, str, int], tuple[str, int, list[str]] | str] = {}


def _rebuild(c: Checker, tree: str, epoch: int) -> tuple[str, int, list[str]] | str:
    """(sha256, size, start-up hooks) of the wheel built from ``tree`` (cached per
    process), or why it could not be built."""
    import tempfile
    from pathlib import Path

    from llmos_community import project as proj
    from llmos_community.wheels import read_wheel
    from llmos.sdk import LlmosError

    key = (str(c.repo), tree, epoch)
    if key not in _BUILT:
        try:
            with tempfile.TemporaryDirectory(prefix="llmos-rebuild-") as tmp:
                wheel = proj.build_from_tree(c.repo, tree, Path(tmp), epoch)
                _BUILT[key] = (*proj.file_sha256(wheel), read_wheel(wheel).startup_hooks)
        except LlmosError as exc:
            _BUILT[key] = exc.message
    return _BUILT[key]


@rule("maintainers-listed", "in-tree-source", "in-tree-build", "in-tree-reviews")
def check_in_tree(c: Checker) -> Iterator[Problem]:
    """An in-tree entry is a standard plugin of this repository: each release names the
    git tree of ``plugins/<dist>`` it was built from, that tree holds the plugin at that
    version, and its wheel rebuilt from the tree has the recorded SHA-256 (releases new
    against ``--base``, or all with ``--rebuild``). No signature and no key: the
    repository's review is the approval."""
    import tomllib

    import setuptools

    from llmos_community import project as proj

    for e in c.entries():
        if e.manifest.origin != "in-tree":
            if not e.manifest.maintainers:
                yield Problem(e.plugin.path, "maintainers", "maintainers-listed",
                              "a community entry lists at least one maintainer with a public key")
            continue
        if e.reviews:
            yield Problem(e.reviews[0].path, "-", "in-tree-reviews",
                          f"{e.manifest.name} is an in-tree entry: it is approved by the repository's review, "
                          f"not by signatures; delete plugins/{e.folder}/reviews/")
        for v, doc in sorted(e.versions.items()):
            m = doc.model
            if m is None:
                continue
            src = m.source
            if src.repository != "." or not (src.subdirectory or "").startswith("plugins/"):
                yield Problem(doc.path, "source", "in-tree-source",
                              "an in-tree release is built from this repository: source.repository = \".\" and "
                              "source.subdirectory = \"plugins/<dist>\"")
                continue
            if c.repo is None:
                yield Problem(doc.path, "source", "in-tree-source",
                              f"cannot verify {e.manifest.name} {v}: the index is not inside a git clone of the "
                              "llmos repository", level="warning")
                continue
            tree = proj.resolve_tree(c.repo, src.tree, src.commit, src.subdirectory)
            if tree is None:
                yield Problem(doc.path, "source.tree", "in-tree-source",
                              f"neither tree {src.tree or '-'} nor {src.commit}:{src.subdirectory} is in this "
                              "repository (a shallow clone? run: git fetch --unshallow)")
                continue
            if src.tree and src.commit:
                at_commit = proj.resolve_tree(c.repo, None, src.commit, src.subdirectory)
                if at_commit is not None and at_commit != src.tree:
                    yield Problem(doc.path, "source.tree", "in-tree-source",
                                  f"tree {src.tree[:12]} is not {src.subdirectory} at commit {src.commit[:12]} "
                                  f"({at_commit[:12]})")
                    continue
            text = proj.git_out(c.repo, "show", f"{tree}:pyproject.toml")
            meta = tomllib.loads(text).get("project", {}) if text else {}
            if names.normalize(str(meta.get("name", ""))) != e.folder or str(meta.get("version")) != v:
                yield Problem(doc.path, "source.tree", "in-tree-source",
                              f"the recorded tree holds {meta.get('name', '?')} {meta.get('version', '?')}, not "
                              f"{e.manifest.name} {v}")
                continue
            is_new = c.base is not None and not c.unchanged_since_base(e, f"versions/{v}.toml")
            if not (c.rebuild or is_new):
                continue
            backend = f"setuptools {setuptools.__version__}"
            if m.build is None or m.build.source_date_epoch is None:
                yield Problem(doc.path, "build", "in-tree-build",
                              "an in-tree release records build.source_date_epoch and build.backend")
                continue
            if m.build.backend != backend:
                yield Problem(doc.path, "build.backend", "in-tree-build",
                              f"cannot rebuild {e.manifest.name} {v} byte for byte here: it was built with "
                              f"{m.build.backend}, this environment has {backend}", level="warning")
                continue
            built = _rebuild(c, tree, m.build.source_date_epoch)
            if isinstance(built, str):
                yield Problem(doc.path, "source.tree", "in-tree-build", built)
                continue
            if built[2]:
                yield Problem(doc.path, "artifact", "wheel-startup-hook",
                              f"the wheel built from tree {tree[:12]} carries {'; '.join(built[2])}")
            if built[:2] != (m.artifact.sha256, m.artifact.size):
                yield Problem(doc.path, "artifact.sha256", "in-tree-build",
                              f"the wheel rebuilt from tree {tree[:12]} has sha256 {built[0][:16]}… and "
                              f"{built[1]} bytes, the entry says {m.artifact.sha256[:16]}… and {m.artifact.size}: "
                              f"record what the tree builds (llmos index release-standard {e.manifest.name})")
