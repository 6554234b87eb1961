"""Core start-up: `llmos --help` against `python -c "import click, pluggy"`.

Target: ≤ 1.5× — llmos's own start-up (plugin loading through the cached entry
points, every installed plugin's hook module, the CLI tree) costs at most half of
what importing its two foundations costs. Both commands run alternately, 30 times
each, in fresh processes; the ratio of medians is reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def _time(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def heavy_modules(args: list[str], env: dict) -> list[str]:
    probe = (
        "import sys, json\nfrom llmos.cli import main\n"
        f"try:\n    main({args!r}, prog_name='llmos')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in ('torch','transformers','numpy','onnxruntime') if m in sys.modules)),"
        " file=sys.stderr)\n"
    )
    cp = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    return json.loads(cp.stderr.strip().splitlines()[-1])


def main() -> str:
    import tempfile

    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    home = tempfile.mkdtemp(prefix="llmos-bench-")
    env = dict(os.environ, LLMOS_HOME=home)
    env.pop("LLMOS_PLUGINS", None)
    llmos = [str(VENV_BIN / "llmos"), "--help"]
    base = [sys.executable, "-c", "import click, pluggy"]
    plist = [str(VENV_BIN / "llmos"), "plugin", "list"]
    for cmd in (llmos, base, plist):  # warm caches (entry-point cache, page cache)
        _time(cmd, env)
    a, b, c = [], [], []
    for _ in range(30):
        a.append(_time(llmos, env))
        b.append(_time(base, env))
        c.append(_time(plist, env))
    ra, rb, rc = statistics.median(a), statistics.median(b), statistics.median(c)
    n_plugins = len(json.loads(subprocess.run([str(VENV_BIN / "llmos"), "plugin", "list", "--json"], env=env,
                                             capture_output=True, text=True).stdout or "[]"))
    heavy_help = heavy_modules(["--help"], env)
    heavy_list = heavy_modules(["plugin", "list"], env)
    ratio = ra / rb
    return write_section("core", "\n".join([
        "## Core start-up",
        "",
        stamp(),
        "",
        f"With {n_plugins} installed plugins loaded. Medians of 30 alternating runs in fresh processes.",
        "",
        "| command | median | ratio to `import click, pluggy` | target |",
        "|---|---|---|---|",
        f"| `python -c \"import click, pluggy\"` | {rb * 1000:.0f} ms | 1.00× | |",
        f"| `llmos --help` | {ra * 1000:.0f} ms | **{ratio:.2f}×** | ≤ 1.5× {'✅' if ratio <= 1.5 else '❌'} |",
        f"| `llmos plugin list` | {rc * 1000:.0f} ms | {rc / rb:.2f}× | |",
        "",
        f"Heavy modules imported by `llmos --help`: {heavy_help or 'none'}; by `llmos plugin list`: "
        f"{heavy_list or 'none'} (torch, transformers, numpy, onnxruntime checked).",
        "",
    ]))


if __name__ == "__main__":
    print(main())
