"""``llmos plugin install|upgrade|uninstall``: hash-verified wheel installs.

1. resolve ``NAME[SPEC]`` through the index (:mod:`llmos_community.resolver`);
2. fetch the artifact — from ``--wheelhouse``/``$LLMOS_WHEELHOUSE`` when the file is
   there, else its ``file://`` or ``https://`` URL — into a private temporary
   directory, and check its size and SHA-256 against the manifest *before* pip sees it;
3. check the release's requirements against the current environment: a missing one
   stops the install with the list of what to install first (no dependency is fetched
   behind the user's back; ``pip install`` them yourself, then retry);
4. install with ``python -m pip install --no-deps --no-index --only-binary=:all:
   --require-hashes -r <file>`` where the file pins ``NAME @ file:///...whl
   --hash=sha256:...`` — never a source build, never the network;
5. check the plugin loads (a fresh interpreter, only that plugin enabled); if it
   does not, or recording fails, the previous state is restored (uninstall, or
   reinstall the previous index release);
6. record source, version, hash and time in the registry (``installed_plugins`` + an event).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from llmos_community.resolver import Resolved, resolve
from llmos.sdk import LlmosError, NotFoundError, ValidationError

CHUNK = 1 << 20


def wheelhouse_dirs(wheelhouse: Path | str | None) -> list[Path]:
    dirs = [Path(wheelhouse)] if wheelhouse else []
    env = os.environ.get("LLMOS_WHEELHOUSE")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return dirs


def fetch_artifact(res: Resolved, dest_dir: Path, wheelhouse: Path | str | None = None,
                   progress: Any = None) -> Path:
    """Copy/download the release's wheel into ``dest_dir`` and verify size and hash.

    :raises ValidationError: ``artifact-hash`` / ``artifact-size`` on a mismatch
        (the file is deleted).
    """
    art = res.manifest.artifact
    dest = dest_dir / res.filename
    src: Path | None = None
    for d in wheelhouse_dirs(wheelhouse):
        if (d / res.filename).is_file():
            src = d / res.filename
            break
    h = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        if src is None and art.url.startswith("file://"):
            src = Path(urllib.request.url2pathname(urllib.parse.urlparse(art.url).path))
        if src is not None:
            if not src.is_file():
                raise NotFoundError(f"artifact {src} of {res.name} {res.version} does not exist")
            stream: Any = open(src, "rb")
        elif art.url.startswith("https://"):
            try:
                stream = urllib.request.urlopen(art.url, timeout=60)  # noqa: S310 - https only
            except OSError as exc:
                raise LlmosError(f"cannot download {art.url}: {exc}; or pass --wheelhouse DIR holding "
                                 f"{res.filename}") from exc
        else:
            raise NotFoundError(f"{res.filename} ({res.name} {res.version}) is not in a wheelhouse: pass "
                                "--wheelhouse DIR (or set $LLMOS_WHEELHOUSE) to a directory holding it")
        with stream:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > art.size:
                    break
                h.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
    if size != art.size:
        dest.unlink()
        raise ValidationError(f"artifact-size: {res.filename} has {'more than ' if size > art.size else ''}"
                              f"{size} bytes, the index says {art.size}: refusing to install it")
    if h.hexdigest() != art.sha256:
        dest.unlink()
        raise ValidationError(f"artifact-hash: {res.filename} has sha256 {h.hexdigest()}, the index says "
                              f"{art.sha256}: refusing to install it (tampered or rebuilt artifact)")
    return dest


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements (PEP 508) not satisfied by the current environment."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = default_environment()
    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            missing.append(text)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append(f"{text} (installed: {have})")
    return missing


def installed_version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return subprocess.run([sys.executable, "-P", "-m", "pip", *args], capture_output=True, text=True, env=env)


def _pip_install_wheel(wheel: Path, name: str, sha256: str, workdir: Path) -> None:
    reqs = workdir / "requirements.txt"
    reqs.write_text(f"{name} @ {wheel.resolve().as_uri()} --hash=sha256:{sha256}\n")
    proc = _pip("install", "--no-deps", "--no-index", "--only-binary=:all:", "--require-hashes",
                "--disable-pip-version-check", "-q", "-r", str(reqs))
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise LlmosError(f"pip could not install {wheel.name}: {tail}")


def _entry_point_names(dist: str) -> list[str]:
    try:
        return [ep.name for ep in md.distribution(dist).entry_points if ep.group == "llmos"]
    except md.PackageNotFoundError:
        return []


def _load_check(names: list[str]) -> str | None:
    """Load the named plugins in a fresh interpreter; return the problem, if any."""
    code = (
        "import json,sys\nfrom llmos.plugins import PluginManager\nm=PluginManager()\nm.components()\n"
        "print(json.dumps({n:[i.status,i.error] for n,i in m.plugins.items()}))"
    )
    env = dict(os.environ, LLMOS_PLUGINS=",".join(names))
    # -P and an empty working directory: the check imports what is installed, never an
    # llmos checkout (or anything else) in the directory the command was run from
    with tempfile.TemporaryDirectory(prefix="llmos-loadcheck-") as cwd:
        proc = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["the plugin check crashed"])[-1]
    states = json.loads(proc.stdout.strip().splitlines()[-1])
    for n in names:
        status, error = states.get(n, ["missing", "entry point not found after install"])
        if status != "ok":
            return f"plugin {n} is {status}: {error}"
    return None


def install(index: Any, requirement: str, *, wheelhouse: Path | str | None = None, upgrade: bool = False,
            progress: Any = None, dry_run: bool = False) -> dict[str, Any]:
    """Resolve, verify and install one plugin; returns what was done."""
    from llmos_community import records

    res = resolve(index, requirement)
    before = installed_version(res.name)
    if before == res.version and not upgrade:
        return {"name": res.name, "version": res.version, "action": "already-installed"}
    if before == res.version:
        return {"name": res.name, "version": res.version, "action": "up-to-date"}
    missing = missing_requirements(res.manifest.requirements)
    if missing:
        raise ValidationError(f"{res.name} {res.version} needs {', '.join(missing)}: install "
                              f"{'it' if len(missing) == 1 else 'them'} first (pip install ...), then retry")
    with tempfile.TemporaryDirectory(prefix="llmos-install-") as tmp:
        wheel = fetch_artifact(res, Path(tmp), wheelhouse, progress)
        from llmos_community.wheels import check_identity, read_wheel, refuse_startup_hooks

        info = read_wheel(wheel)
        check_identity(info, res.name, res.version)
        refuse_startup_hooks(info)
        if dry_run:
            return {"name": res.name, "version": res.version, "action": "would-install", "from": before}
        _pip_install_wheel(wheel, res.name, res.manifest.artifact.sha256, Path(tmp))
        try:
            problem = _load_check(_entry_point_names(res.name) or list(res.manifest.entry_points))
            if problem:
                raise LlmosError(f"{res.name} {res.version} installed but does not load ({problem}); "
                                 "it was removed again")
            records.record_install(res.name, res.version, "index", res.manifest.artifact.url,
                                   res.manifest.artifact.sha256)
        except BaseException:
            _restore(index, res.name, before, wheelhouse)
            raise
    return {"name": res.name, "version": res.version, "action": "upgraded" if before else "installed",
            "from": before, "sha256": res.manifest.artifact.sha256, "yanked": res.yanked}


def _restore(index: Any, name: str, before: str | None, wheelhouse: Path | str | None) -> None:
    """Put back the state before a failed install."""
    _pip("uninstall", "-y", "-q", name)
    if before is None:
        return
    try:
        res = resolve(index, f"{name}=={before}", verify=False)
        with tempfile.TemporaryDirectory(prefix="llmos-restore-") as tmp:
            wheel = fetch_artifact(res, Path(tmp), wheelhouse)
            _pip_install_wheel(wheel, res.name, res.manifest.artifact.sha256, Path(tmp))
    except LlmosError as exc:
        raise LlmosError(f"could not restore {name} {before} after a failed install: {exc.message}; "
                         f"reinstall it yourself (pip install {name}=={before})") from exc


def uninstall(name: str) -> dict[str, Any]:
    from llmos_community import records

    version = installed_version(name)
    if version is None:
        raise NotFoundError(f"{name} is not installed (see: llmos plugin list)")
    proc = _pip("uninstall", "-y", "-q", name)
    if proc.returncode != 0:
        raise LlmosError(f"pip could not uninstall {name}: {proc.stderr.strip().splitlines()[-1:]}")
    records.record_uninstall(name, version)
    return {"name": name, "version": version, "action": "uninstalled"}


def index_state(index: Any, name: str) -> dict[str, Any] | None:
    """What the index says about ``name``: latest release, yanked versions, status."""
    from packaging.version import Version

    from llmos.sdk import NotFoundError as _NF

    try:
        entry = index.find(name)
    except _NF:
        return None
    m = entry.manifest
    vs = entry.valid_versions()
    live = [Version(v) for v, vm in vs.items() if not vm.yanked]
    return {
        "name": m.name, "status": m.status, "summary": m.summary,
        "latest": str(max(live)) if live else None,
        "versions": sorted(vs, key=Version),
        "yanked": {v: vm.yanked_reason for v, vm in vs.items() if vm.yanked},
        "origin": m.origin,
        "maintainers": ([mm.handle for mm in m.maintainers] if m.origin != "in-tree"
                        else sorted(index.core_maintainers())),
        "deprecation": m.deprecation.model_dump() if m.deprecation else None,
        "source": m.urls.source,
    }


