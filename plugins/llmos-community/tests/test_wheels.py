"""Wheels are data until verified (issue 12.16), through the real command line:

- a release signed only by its author whose wheel ships a ``.pth`` file (or a
  ``sitecustomize`` module, or a script replacing ``llmos``) is refused by
  ``index check`` and by ``plugin install``, and nothing lands in the environment;
- ``contrib submit --wheel`` checks the wheel's metadata name and version;
- the post-install load check never imports from the current directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from community_helpers import commit_project, has_dist, llmos


def remake_wheel(src: Path, dest_dir: Path, *, name: str | None = None, version: str | None = None,
                 extra: dict[str, bytes] | None = None, entry_points: str = "") -> Path:
    """A copy of wheel ``src`` with another metadata name/version, extra files and extra
    entry points, and a correct RECORD (what an attacker builds by hand)."""
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    old_info = next(n.split("/")[0] for n in files if n.endswith(".dist-info/METADATA"))
    old_name, old_version = old_info.removesuffix(".dist-info").rsplit("-", 1)
    new_name = (name or old_name).replace("-", "_")
    new_version = version or old_version
    new_info = f"{new_name}-{new_version}.dist-info"
    out: dict[str, bytes] = {}
    for n, data in files.items():
        if n.endswith("/RECORD"):
            continue
        if n.startswith(old_info + "/"):
            n = new_info + n[len(old_info):]
            if n.endswith("/METADATA"):
                text = data.decode()
                text = re.sub(r"(?m)^Name: .*$", f"Name: {name or old_name.replace('_', '-')}", text)
                text = re.sub(r"(?m)^Version: .*$", f"Version: {new_version}", text)
                data = text.encode()
            if n.endswith("/entry_points.txt") and entry_points:
                data = data + b"\n" + entry_points.encode()
        out[n] = data
    out.update(extra or {})
    record = []
    for n, data in out.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{n},sha256={digest},{len(data)}")
    record.append(f"{new_info}/RECORD,,")
    out[f"{new_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{new_name}-{new_version}-py3-none-any.whl"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in out.items():
            zf.writestr(n, data)
    return dest


def _sha(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def _release_by_author_only(world, wheel: Path, version: str) -> None:
    """What an attacker with a plugin in the index can do alone: add a version manifest
    for their own wheel and sign it as the plugin's maintainer (self-publishing)."""
    vdir = world.entry_dir / "versions"
    text = (vdir / "0.1.0.toml").read_text()
    sha, size = _sha(wheel)
    text = text.replace('version = "0.1.0"', f'version = "{version}"')
    text = re.sub(r'url = "[^"]*"', f'url = "{wheel.name}"', text)
    text = re.sub(r'sha256 = "[0-9a-f]{64}"', f'sha256 = "{sha}"', text)
    text = re.sub(r"size = \d+", f"size = {size}", text)
    (vdir / f"{version}.toml").write_text(text)
    llmos("contrib", "approve", "llmos-hello", "--version", version, "--handle", "alice", "--index",
          str(world.index), check=True)


def _good_wheel(world) -> Path:
    return next(world.wheelhouse.glob("llmos_hello-0.1.0-*.whl"))


def test_wheel_with_startup_hooks_refused_by_check_and_install(world, make_venv):
    evil = remake_wheel(_good_wheel(world), world.wheelhouse, version="0.2.0", extra={
        "llmos_hello-evil.pth": b"import os; os.environ['PWNED'] = '1'\n",
        "sitecustomize.py": b"print('every interpreter runs me')\n",
    }, entry_points="[console_scripts]\nllmos = llmos_hello.plugin:main\n")
    _release_by_author_only(world, evil, "0.2.0")
    base = subprocess.run(["git", "-C", str(world.root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    # the signatures and the hash are fine; only opening the wheel shows what it does
    out = llmos("index", "check", str(world.index), "--base", base, "--json")
    assert out.returncode == 0, out.stdout
    out = llmos("index", "check", str(world.index), "--base", base, "--wheelhouse", str(world.wheelhouse), "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 1 and not report["ok"]
    (problem,) = [p for p in report["problems"] if p["rule"] == "wheel-startup-hook"]
    assert "llmos_hello-evil.pth" in problem["message"] and "sitecustomize.py" in problem["message"]
    assert "'llmos'" in problem["message"]

    py = make_venv()
    out = llmos("plugin", "install", "llmos-hello==0.2.0", "--index", str(world.index), "--wheelhouse",
                str(world.wheelhouse), python=str(py))
    assert out.returncode != 0 and "wheel-startup-hook" in out.stderr and ".pth" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not has_dist(py, "llmos-hello")
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    assert not (site / "llmos_hello-evil.pth").exists() and not (site / "sitecustomize.py").exists()
    # each hook alone is refused too
    for i, extra in enumerate(({"x/y.pth": b"import os\n"}, {"usercustomize/__init__.py": b""})):
        wheel = remake_wheel(_good_wheel(world), world.wheelhouse / f"alone{i}", version=f"0.3.{i}", extra=extra)
        shutil.copy2(wheel, world.wheelhouse / wheel.name)
        _release_by_author_only(world, world.wheelhouse / wheel.name, f"0.3.{i}")
        out = llmos("plugin", "install", f"llmos-hello==0.3.{i}", "--index", str(world.index), "--wheelhouse",
                    str(world.wheelhouse), python=str(py))
        assert out.returncode != 0 and "wheel-startup-hook" in out.stderr and not has_dist(py, "llmos-hello")


def test_submit_checks_the_wheel_metadata_name_and_version(world, tmp_path):
    project = tmp_path / "llmos-hello"
    shutil.copytree(world.project, project, ignore=shutil.ignore_patterns(".git", "dist", "build", "*.egg-info"))
    py = project / "pyproject.toml"
    py.write_text(py.read_text().replace('version = "0.1.0"', 'version = "0.1.1"'))
    commit_project(project)
    # named like this plugin's wheel, but its metadata says totally-different
    wrong = remake_wheel(_good_wheel(world), tmp_path / "w1", name="totally-different", version="0.1.1")
    disguised = tmp_path / "w2" / "llmos_hello-0.1.1-py3-none-any.whl"
    disguised.parent.mkdir()
    shutil.copy2(wrong, disguised)
    for wheel in (wrong, disguised):
        out = llmos("contrib", "submit", str(project), "--handle", "alice", "--index", str(world.index),
                    "--wheel", str(wheel))
        assert out.returncode != 0, out.stdout
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "totally-different" in lines[0] and "llmos-hello 0.1.1" in lines[0]
    older = remake_wheel(_good_wheel(world), tmp_path / "w3", version="0.0.9")
    out = llmos("contrib", "submit", str(project), "--handle", "alice", "--index", str(world.index),
                "--wheel", str(older))
    assert out.returncode != 0 and "0.0.9" in out.stderr
    assert not (world.entry_dir / "versions" / "0.1.1.toml").exists()
    # the right wheel goes through
    good = remake_wheel(_good_wheel(world), tmp_path / "w4", version="0.1.1")
    out = llmos("contrib", "submit", str(project), "--handle", "alice", "--index", str(world.index),
                "--wheel", str(good), check=True)
    v = tomllib.loads((world.entry_dir / "versions" / "0.1.1.toml").read_text())
    assert v["artifact"]["sha256"] == _sha(good)[0]


def test_load_check_does_not_import_the_current_directory(world, make_venv, tmp_path):
    """Run from a folder holding an llmos checkout (here: one that cannot be imported),
    the install's load check imports the installed llmos, not that checkout."""
    here = tmp_path / "checkout"
    (here / "llmos").mkdir(parents=True)
    (here / "llmos" / "__init__.py").write_text("raise ImportError('this is another llmos checkout')\n")
    py = make_venv()
    # -P: the CLI process itself must not import ./llmos either (the console script does not)
    out = subprocess.run([str(py), "-P", "-m", "llmos", "plugin", "install", "llmos-hello", "--index",
                          str(world.index), "--wheelhouse", str(world.wheelhouse)],
                         capture_output=True, text=True, cwd=here, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Installed llmos-hello 0.1.0" in out.stdout and has_dist(py, "llmos-hello")
    assert sys.executable
