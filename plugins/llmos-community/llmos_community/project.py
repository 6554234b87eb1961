"""A plugin project on disk: its pyproject, its hook module, its wheel.

Used by ``llmos plugin test PATH`` (contract checks on any plugin directory) and
``llmos contrib submit PATH`` (build the wheel, fill in the manifests).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.sdk import LlmosError, NotFoundError, ValidationError


@dataclass
class Project:
    path: Path
    pyproject: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        return self.pyproject.get("project", {})

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def entry_points(self) -> dict[str, str]:
        return dict(self.meta.get("entry-points", {}).get("llmos", {}))

    def source_roots(self) -> list[Path]:
        where = (self.pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
                 .get("where"))
        roots = [self.path / w for w in where] if where else []
        roots += [self.path / "src", self.path]
        return [r for r in roots if r.is_dir()]


def read_project(path: Path | str) -> Project:
    path = Path(path).resolve()
    py = path / "pyproject.toml"
    if not py.is_file():
        raise NotFoundError(f"{path} has no pyproject.toml: point at a plugin project (llmos plugin new makes one)")
    try:
        data = tomllib.loads(py.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{py} is not valid TOML: {exc}") from exc
    meta = data.get("project", {})
    for key in ("name", "version"):
        if key not in meta:
            raise ValidationError(f"{py}: [project] {key} is missing (a static {key} is required to publish)")
    if not meta.get("entry-points", {}).get("llmos"):
        raise ValidationError(f"{py}: no [project.entry-points.llmos] entry: add `my-plugin = \"my_pkg.plugin\"`")
    return Project(path, data)


def load_hook_modules(project: Project) -> dict[str, Any]:
    """Import the project's hook modules (entry-point name → module) from its source tree."""
    roots = [str(r) for r in project.source_roots()]
    out = {}
    sys.path[:0] = roots
    try:
        for ep_name, value in project.entry_points.items():
            modname, _, attr = value.partition(":")
            top = modname.split(".")[0]
            for loaded in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[loaded]  # import this tree's code, not an installed copy
            importlib.invalidate_caches()
            try:
                mod = importlib.import_module(modname.strip())
            except Exception as exc:  # noqa: BLE001 - reported as one line
                raise LlmosError(f"cannot import hook module {modname!r} of {project.name}: "
                                 f"{type(exc).__name__}: {exc}") from exc
            out[ep_name] = getattr(mod, attr) if attr else mod
    finally:
        for r in roots:
            if r in sys.path:
                sys.path.remove(r)
    return out


def describe_components(project: Project) -> tuple[list[str], list[str]]:
    """``(stages, component refs)`` the project's plugin registers."""
    from llmos.sdk import PluginManager

    stages: set[str] = set()
    refs: list[str] = []
    for ep_name, obj in load_hook_modules(project).items():
        manager = PluginManager(load_entrypoints=False)
        manager.register(obj, name=ep_name)
        for comp in manager.components():
            stages.add(comp.stage)
            refs.append(comp.ref)
    from llmos.sdk import STAGES

    return [s for s in STAGES if s in stages], sorted(set(refs))


def source_date_epoch(path: Path) -> int:
    """The commit time of HEAD of the git repository holding ``path`` (reproducible
    builds), else 315532800 (1980-01-01, the earliest a zip can hold)."""
    proc = subprocess.run(["git", "-C", str(path), "log", "-1", "--format=%ct", "--", "."],
                          capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        return int(proc.stdout.strip())
    return 315532800


def git_commit(path: Path) -> tuple[str | None, str | None]:
    """``(commit, remote url)`` of the repository holding ``path``."""
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = proc.stdout.strip() if proc.returncode == 0 else None
    proc = subprocess.run(["git", "-C", str(path), "remote", "get-url", "origin"], capture_output=True, text=True)
    remote = proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None
    return commit, remote


def build_wheel(project_dir: Path, out_dir: Path, *, epoch: int | None = None) -> Path:
    """Build the project's wheel (no build isolation, no network) into ``out_dir``
    with ``SOURCE_DATE_EPOCH`` set, so the same source and backend give the same bytes."""
    project_dir, out_dir = Path(project_dir).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch if epoch is not None else source_date_epoch(project_dir)),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([sys.executable, "-P", "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out_dir), str(project_dir)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LlmosError(f"building the wheel of {project_dir} failed: {' | '.join(tail)}")
    project = read_project(project_dir)
    from packaging.utils import canonicalize_name, parse_wheel_filename

    wanted = canonicalize_name(project.name)
    for whl in sorted(out_dir.glob("*.whl"), key=lambda p: p.stat().st_mtime, reverse=True):
        name, ver, _b, _t = parse_wheel_filename(whl.name)
        if name == wanted and str(ver) == project.version:
            return whl
    raise LlmosError(f"pip built no wheel of {project.name} {project.version} in {out_dir}")


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# -- in-tree (standard) plugins: rebuilt from a git tree of this repository ---------------


def git_out(repo: Path, *args: str) -> str | None:
    """stdout of ``git -C repo ARGS`` (stripped), or None when git fails."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def resolve_tree(repo: Path, tree: str | None, commit: str | None, subdirectory: str | None) -> str | None:
    """The git tree of an in-tree release: ``tree`` when that object exists here, else
    ``commit:subdirectory``; None when neither is in this repository."""
    if tree and git_out(repo, "cat-file", "-t", tree) == "tree":
        return tree
    if commit and subdirectory:
        return git_out(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}:{subdirectory}")
    return None


def export_tree(repo: Path, tree: str, dest: Path) -> Path:
    """Write the files of git tree ``tree`` into ``dest`` (``git archive``; never the
    working tree, so what is built is exactly what the repository holds)."""
    import io
    import tarfile

    proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", tree], capture_output=True)
    if proc.returncode != 0:
        raise LlmosError(f"git archive {tree} failed: {proc.stderr.decode().strip()}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def build_from_tree(repo: Path, tree: str, out_dir: Path, epoch: int) -> Path:
    """Build the wheel of the plugin whose source is git tree ``tree`` of ``repo``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmos-tree-") as tmp:
        src = export_tree(repo, tree, Path(tmp) / "src")
        return build_wheel(src, out_dir, epoch=epoch)


#: libraries a hook module must not import at import time (llmos --help would load them)
HEAVY_MODULES = ("torch", "numpy", "transformers")


def heavy_imports(project: Project) -> dict[str, list[str]]:
    """``{entry-point name: [heavy modules its hook module imports at import time]}``,
    measured in a fresh interpreter (``-P``, the project's source tree first on the path)."""
    import json

    roots = [str(r) for r in project.source_roots()]
    eps = {ep: value.partition(":")[0].strip() for ep, value in project.entry_points.items()}
    code = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = {roots!r}\n"
        "import llmos\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "out = {}\n"
        f"for ep, mod in {sorted(eps.items())!r}:\n"
        "    before = {m for m in heavy if m in sys.modules}\n"
        "    try:\n"
        "        importlib.import_module(mod)\n"
        "    except Exception:\n"
        "        continue\n"
        "    out[ep] = sorted(m for m in heavy if m in sys.modules and m not in before)\n"
        "print(json.dumps(out))\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmos-plugin-test-") as cwd:
        proc = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd=cwd,
                              timeout=300)
    if proc.returncode != 0 or not proc.stdout.strip():
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])
