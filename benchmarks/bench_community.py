"""Community workflow: what hash-verified installs and index checks cost.

1. ``llmos plugin install NAME`` (resolve through the index, check the entry's
   signatures and approvals, verify size + SHA-256, pip ``--require-hashes``, a
   load check in a fresh interpreter, a registry record) against plain
   ``pip install --no-deps <wheel>`` of the same wheel, into the same throwaway
   environment, alternating, 5 times each; ratio of medians. Target: ≤ 2.5×.
2. ``index check`` scaling: a synthetic index of signed plugins (2 approvals and a
   consent each) with 10 and with 80 plugins; per-plugin time at 80 over per-plugin
   time at 10 (1.0 = linear; the look-alike rule compares every pair of names).
   Target: ≤ 2×.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import string
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _venv(path: Path, hide: str) -> Path:
    """A venv seeing this environment's packages (symlinked) except ``hide``."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    h = hide.replace("-", "_")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not re.fullmatch(rf"(__editable__\.|__editable___)?{h}(-[0-9][^/]*|_[0-9][0-9_]*_finder\.py)?",
                            entry.name.lower()):
            (purelib / entry.name).symlink_to(entry)
    return py


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def bench_install(tmp: Path) -> tuple[float, float]:
    import io
    import tarfile
    import tomllib

    from llmos_community.project import build_wheel

    name = "llmos-jsonl-sink"
    ver = tomllib.loads((REPO / "registry" / "plugins" / name / "versions" / "0.1.0.toml").read_text())
    data = subprocess.run(["git", "-C", str(REPO), "archive", ver["source"]["commit"], ver["source"]["subdirectory"]],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp / "src", filter="data")
    wheel = build_wheel(tmp / "src" / ver["source"]["subdirectory"], tmp / "wh",
                        epoch=ver["build"]["source_date_epoch"])
    py = _venv(tmp / "venv", name)
    env = dict(os.environ, LLMOS_HOME=str(tmp / "home"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("LLMOS_PLUGINS", None)
    ours = [str(py), "-m", "llmos", "plugin", "install", name, "--index", str(REPO / "registry"),
            "--wheelhouse", str(tmp / "wh")]
    plain = [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    uninstall = [str(py), "-m", "pip", "uninstall", "-y", "-q", name]
    a, b = [], []
    for _ in range(5):
        a.append(_timed(ours, env))
        assert subprocess.run([str(py), "-c", f"import importlib.metadata as m; m.version({name!r})"],
                              capture_output=True).returncode == 0, "the install did not happen"
        subprocess.run(uninstall, env=env, check=True, capture_output=True)
        b.append(_timed(plain, env))
        subprocess.run(uninstall, env=env, check=True, capture_output=True)
    return statistics.median(a), statistics.median(b)


def _synthetic_index(root: Path, n: int) -> None:
    import datetime as dt

    from llmos_community import contrib, signing
    from llmos_community.index import DirSource, load_index

    root.mkdir(parents=True)
    keys = {h: signing.generate_key(h, force=True) for h in ("author", "rev-a", "rev-b")}
    (root / "maintainers.toml").write_text("".join(
        f'[[maintainer]]\nhandle = "{h}"\npublic_key = "{keys[h]}"\nroles = ["index"]\nsince = 2026-01-01\n\n'
        for h in ("rev-a", "rev-b")))
    for i in range(n):
        rng = random.Random(i)
        name = "bench-" + "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
        d = root / "plugins" / name
        (d / "versions").mkdir(parents=True)
        (d / "README.md").write_text(f"# {name}\n")
        (d / "plugin.toml").write_text(contrib.dump_toml({
            "name": name, "summary": "benchmark entry", "license": "MIT", "authors": [{"name": "a", "handle": "author"}],
            "maintainers": [{"handle": "author", "public_key": keys["author"]}],
            "urls": {"source": "https://example.org/src"}, "stages": ["data"], "api_versions": [1],
            "security_contact": "a@example.org", "added": dt.date(2026, 1, 1)}))
        wheel = name.replace("-", "_") + "-1.0.0-py3-none-any.whl"
        (d / "versions" / "1.0.0.toml").write_text(contrib.dump_toml({
            "version": "1.0.0", "released": dt.date(2026, 1, 1), "entry_points": {name: "x.plugin"},
            "artifact": {"url": wheel, "sha256": "0" * 64, "size": 1},
            "source": {"repository": "https://example.org/src", "commit": "abcdef0"}}))
    idx = load_index(DirSource(root))
    for entry in idx.plugins.values():
        contrib.sign_review(root, entry, "author", "consent", "plugin")
        for h in ("rev-a", "rev-b"):
            contrib.sign_review(root, entry, h, "approve", "plugin")


def bench_check(tmp: Path, n: int, reps: int = 3) -> float:
    from llmos_community.check import check_index
    from llmos_community.index import DirSource, load_index

    root = tmp / f"index-{n}"
    _synthetic_index(root, n)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        problems = [p for p in check_index(load_index(DirSource(root))) if p.level == "error"]
        times.append(time.perf_counter() - t0)
        assert not problems, problems[:3]
    return statistics.median(times) / n


def main() -> str:
    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory(prefix="llmos-bench-community-") as t:
        tmp = Path(t)
        os.environ["LLMOS_HOME"] = str(tmp / "home")
        ours, plain = bench_install(tmp)
        small, large = bench_check(tmp, 10), bench_check(tmp, 80)
    lines = [
        "## Community: verified installs and index checks",
        "",
        stamp(),
        "",
        "| measure | ratio | target | detail |",
        "|---|---|---|---|",
        f"| `llmos plugin install` / plain `pip install --no-deps` (same wheel, same venv) | "
        f"{ours / plain:.2f}× | ≤ 2.5× | medians of 5 alternating runs: {ours:.2f} s vs {plain:.2f} s |",
        f"| `index check` time per plugin, 80 plugins / 10 plugins | {large / small:.2f}× | ≤ 2× | "
        f"{small * 1000:.1f} ms vs {large * 1000:.1f} ms per signed plugin |",
        "",
        "The install overhead is the index check of the entry (ed25519 verification of its reviews), "
        "the SHA-256 pass before pip, and the load check of the new plugin in a fresh interpreter "
        "(which imports llmos and the plugin's hook module).",
        "",
    ]
    text = "\n".join(lines)
    return write_section("community", text)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(main())
