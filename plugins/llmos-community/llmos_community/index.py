"""Reading an index: from a directory, or from a git ref (``--base``).

Loading never raises on bad content: every file is parsed and validated
separately and problems are kept as :class:`Problem` records, so ``index check``
can report all of them at once. Resolution and install use :func:`load_index`
and refuse an index whose entry they need is invalid.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from llmos.sdk import LlmosError, NotFoundError, ValidationError

PLUGINS_DIR = "plugins"
MAINTAINER_REVIEWS_DIR = "maintainers-approvals"


@dataclass
class Problem:
    """One finding of ``index check``: ``path: field: rule: message``."""

    path: str
    field: str
    rule: str
    message: str
    level: str = "error"  # or "warning" (flagged, does not fail)

    def __str__(self) -> str:
        prefix = "warning: " if self.level == "warning" else ""
        return f"{prefix}{self.path}: {self.field}: {self.rule}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "field": self.field, "rule": self.rule, "message": self.message,
                "level": self.level}


# -- sources -------------------------------------------------------------------------


class DirSource:
    """An index in a directory. ``label`` prefixes the paths shown to people."""

    def __init__(self, root: Path, label: str | None = None) -> None:
        self.root = Path(root)
        self.label = label if label is not None else _display(self.root)

    def files(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                out.append(Path(dirpath, fn).relative_to(self.root).as_posix())
        return out

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def show(self, rel: str) -> str:
        return f"{self.label}/{rel}" if self.label else rel

    def repository(self) -> Path | None:
        """The top of the git repository holding the index, or None (not in one)."""
        proc = subprocess.run(["git", "-C", str(self.root), "rev-parse", "--show-toplevel"], capture_output=True,
                              text=True)
        return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


class GitSource:
    """The index as it is at a git ref (``git ls-tree`` / ``git show``); no checkout."""

    def __init__(self, repo: Path, ref: str, prefix: str, label: str | None = None) -> None:
        self.repo, self.ref, self.prefix = Path(repo), ref, prefix.strip("/")
        self.label = label if label is not None else self.prefix
        self._files: list[str] | None = None

    def _git(self, *args: str) -> bytes:
        proc = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True)
        if proc.returncode != 0:
            raise ValidationError(f"git {' '.join(args)} failed: {proc.stderr.decode().strip()}")
        return proc.stdout

    def files(self) -> list[str]:
        if self._files is None:
            spec = f"{self.prefix}/" if self.prefix else "."
            out = self._git("ls-tree", "-r", "--name-only", "-z", self.ref, "--", spec).decode()
            names = [n for n in out.split("\0") if n]
            cut = len(self.prefix) + 1 if self.prefix else 0
            self._files = sorted(n[cut:] for n in names)
        return self._files

    def read(self, rel: str) -> bytes:
        path = f"{self.prefix}/{rel}" if self.prefix else rel
        return self._git("show", f"{self.ref}:{path}")

    def show(self, rel: str) -> str:
        return f"{self.label}/{rel}" if self.label else rel

    def repository(self) -> Path | None:
        return self.repo


def git_source_for(path: Path, ref: str) -> GitSource:
    """A :class:`GitSource` for the index directory ``path`` at ``ref`` of its repository."""
    path = Path(path).resolve()
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValidationError(f"--base needs a git repository, but {path} is not in one")
    top = Path(proc.stdout.strip()).resolve()
    ok = subprocess.run(["git", "-C", str(top), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                        capture_output=True)
    if ok.returncode != 0:
        raise NotFoundError(f"git ref {ref!r} not found in {top}: fetch it (git fetch origin) or name another ref")
    prefix = path.relative_to(top).as_posix()
    return GitSource(top, ref, "" if prefix == "." else prefix, label=_display(path))


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


# -- the loaded index ----------------------------------------------------------------


@dataclass
class Doc:
    """One TOML file: its raw parsed data and, when valid, its model."""

    path: str  # as shown to people
    raw: dict[str, Any] | None
    model: Any = None


@dataclass
class ReviewDoc(Doc):
    subject: str = ""
    handle: str = ""


@dataclass
class PluginEntry:
    folder: str
    plugin: Doc
    versions: dict[str, Doc] = field(default_factory=dict)  # file stem -> doc
    reviews: list[ReviewDoc] = field(default_factory=list)
    description_sha256: str | None = None
    files: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.plugin.model is not None:
            return self.plugin.model.name
        return str((self.plugin.raw or {}).get("name") or self.folder)

    @property
    def manifest(self) -> Any:
        return self.plugin.model

    def valid_versions(self) -> dict[str, Any]:
        """``{version: VersionManifest}`` for the versions whose file is valid."""
        return {v: d.model for v, d in self.versions.items() if d.model is not None}

    def raw_versions(self, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
        keys = self.versions if only is None else only
        return {v: self.versions[v].raw or {} for v in keys if v in self.versions}


@dataclass
class Index:
    source: Any
    maintainers: Doc | None = None
    removed: Doc | None = None
    plugins: dict[str, PluginEntry] = field(default_factory=dict)  # folder -> entry
    #: signed approvals of maintainers.toml as it is (``maintainers-approvals/<handle>.toml``)
    maintainer_reviews: list[ReviewDoc] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)

    def index_maintainers(self, *, emeritus: bool = False) -> dict[str, Any]:
        """``{handle: IndexMaintainer}`` of active maintainers with the ``index`` role
        (``emeritus=True``: also the emeritus ones)."""
        if self.maintainers is None or self.maintainers.model is None:
            return {}
        return {m.handle: m for m in self.maintainers.model.maintainer
                if "index" in m.roles and (m.status == "active" or emeritus)}

    def core_maintainers(self) -> dict[str, Any]:
        """``{handle: IndexMaintainer}`` of active maintainers with the ``core`` role."""
        if self.maintainers is None or self.maintainers.model is None:
            return {}
        return {m.handle: m for m in self.maintainers.model.maintainer if "core" in m.roles and m.status == "active"}

    def find(self, name: str) -> PluginEntry:
        from llmos_community.names import normalize

        entry = self.plugins.get(normalize(name))
        if entry is None or entry.manifest is None:
            raise NotFoundError(f"no plugin named {name!r} in the index at {self.source.show('')}; "
                                "search with: llmos plugin search TEXT")
        return entry


def _parse(source: Any, rel: str, model: Any, problems: list[Problem], rule: str = "schema") -> Doc:
    import pydantic

    shown = source.show(rel)
    try:
        raw = tomllib.loads(source.read(rel).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, "-", "toml", f"not valid TOML: {exc}"))
        return Doc(shown, None)
    try:
        return Doc(shown, raw, model.model_validate(raw))
    except pydantic.ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "-"
            problems.append(Problem(shown, loc, rule, err["msg"]))
        return Doc(shown, raw)


def load_index(source: Any) -> Index:
    """Read every file of the index in ``source`` (a :class:`DirSource` or :class:`GitSource`)."""
    from llmos_community import schema

    if isinstance(source, (str, Path)):
        source = DirSource(Path(source))
    index = Index(source=source)
    try:
        files = source.files()
    except FileNotFoundError:
        files = []
    per_plugin: dict[str, list[str]] = {}
    for rel in files:
        parts = PurePosixPath(rel).parts
        if parts[0] == PLUGINS_DIR and len(parts) >= 3:
            per_plugin.setdefault(parts[1], []).append("/".join(parts[2:]))
        else:
            index.other_files.append(rel)
    if "maintainers.toml" in files:
        index.maintainers = _parse(source, "maintainers.toml", schema.MaintainersFile, index.problems,
                                   "maintainers-schema")
    for rel in files:
        p = PurePosixPath(rel)
        if p.parts[0] == MAINTAINER_REVIEWS_DIR and len(p.parts) == 2 and p.suffix == ".toml":
            doc = _parse(source, rel, schema.ReviewRecord, index.problems, "review-schema")
            index.maintainer_reviews.append(ReviewDoc(doc.path, doc.raw, doc.model, subject="maintainers",
                                                      handle=p.stem))
    if "removed.toml" in files:
        index.removed = _parse(source, "removed.toml", schema.RemovedFile, index.problems)
    for folder, rels in sorted(per_plugin.items()):
        base = f"{PLUGINS_DIR}/{folder}"
        if "plugin.toml" not in rels:
            index.problems.append(Problem(source.show(base), "plugin.toml", "schema",
                                          "missing plugin.toml (write it with: llmos contrib submit)"))
            continue
        entry = PluginEntry(folder, _parse(source, f"{base}/plugin.toml", schema.PluginManifest, index.problems),
                            files=rels)
        desc = (entry.plugin.raw or {}).get("description_file", "README.md")
        if isinstance(desc, str) and desc in rels:
            entry.description_sha256 = hashlib.sha256(source.read(f"{base}/{desc}")).hexdigest()
        for rel in rels:
            p = PurePosixPath(rel)
            if p.parts[0] == "versions" and len(p.parts) == 2 and p.suffix == ".toml":
                entry.versions[p.stem] = _parse(source, f"{base}/{rel}", schema.VersionManifest, index.problems)
            elif p.parts[0] == "reviews" and len(p.parts) == 3 and p.suffix == ".toml":
                doc = _parse(source, f"{base}/{rel}", schema.ReviewRecord, index.problems, "review-schema")
                entry.reviews.append(ReviewDoc(doc.path, doc.raw, doc.model, subject=p.parts[1], handle=p.stem))
        index.plugins[folder] = entry
    return index


def default_index_path() -> Path:
    """Where the index is: ``$LLMOS_INDEX``, else ``./registry`` when it has one,
    else the ``registry/`` of the llmos source checkout this code runs from,
    else ``$LLMOS_HOME/index``."""
    env = os.environ.get("LLMOS_INDEX")
    if env:
        return Path(env).expanduser()
    cwd = Path.cwd() / "registry"
    if (cwd / "maintainers.toml").exists():
        return cwd
    import llmos

    checkout = Path(llmos.__file__).resolve().parents[1] / "registry"
    if (checkout / "maintainers.toml").exists():
        return checkout
    from llmos.sdk import home

    return home() / "index"


def open_index(path: Path | str | None = None) -> Index:
    """Load the index at ``path`` (default :func:`default_index_path`) for reading."""
    root = Path(path) if path is not None else default_index_path()
    if not root.is_dir():
        raise NotFoundError(f"no plugin index at {root}: clone the llmos repository's registry/ there, "
                            "or point --index / $LLMOS_INDEX at one")
    return load_index(DirSource(root))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LlmosError(f"cannot read {path}: {exc}") from exc
