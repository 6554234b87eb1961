"""Core start-up: `llmos --help` against `python -c "import click, pluggy"`, and
`llmos model register` against the same call through the Python API.

Target: ≤ 1.5× — llmos's own start-up (plugin loading through the cached entry
points, every installed plugin's hook module, the CLI tree) costs at most half of
what importing its two foundations costs. Both commands run alternately, 30 times
each, in fresh processes; the ratio of medians is reported.

Registry start-up (issue 17.6): `llmos model register NAME DIR` in a fresh process,
`open_registry().register_version(NAME, DIR)` in a fresh `python -c` process, and the
same call in this (warm) process, taking turns, for a tiny and a 105 MB safetensors
model; `python -c pass` and `python -c "import sqlalchemy.orm"` run in the same rounds
as the floor. Wall and CPU time (the children's rusage: less disturbed than wall time
by other work on a shared machine) are reported, as medians. The child processes run
without ``PYTHONDONTWRITEBYTECODE``, so the warm-up writes the bytecode an installed
llmos has. ``python benchmarks/bench_core.py --register`` runs only this part.
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


def _safetensors_dir(root: Path, tensors: int, nbytes: int) -> Path:
    """A Hugging Face layout directory (config, tokenizer, one hand-written safetensors file)."""
    import random

    root.mkdir(parents=True, exist_ok=True)
    header, offset = {}, 0
    for i in range(tensors):
        header[f"model.layers.{i}.weight"] = {"dtype": "F32", "shape": [nbytes // 4],
                                              "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(root / "model.safetensors", "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for i in range(tensors):
            f.write(random.Random(i).randbytes(nbytes))
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": tensors}))
    (root / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0}}}))
    return root


def _run(cmd: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


API = "import sys\nfrom llmos.registry import open_registry\nopen_registry().register_version(sys.argv[1], sys.argv[2])"


def bench_register_startup(rounds: int = 7) -> dict:
    """CLI vs API (fresh process) vs API (this process) registering the same directory."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="llmos-bench-startup-", dir=os.environ.get("LLMOS_BENCH_TMP")))
    env = dict(os.environ, LLMOS_HOME=str(work / "home"))
    for var in ("LLMOS_PLUGINS", "LLMOS_DATABASE_URL", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)  # every installed plugin, SQLite in the home, bytecode written
    saved = {k: os.environ.get(k) for k in ("LLMOS_HOME", "LLMOS_PLUGINS", "LLMOS_DATABASE_URL")}
    os.environ["LLMOS_HOME"] = env["LLMOS_HOME"]
    os.environ.pop("LLMOS_PLUGINS", None)
    os.environ.pop("LLMOS_DATABASE_URL", None)
    try:
        from llmos.registry import open_registry
        from llmos_registry.db import dispose_engines

        models = {"tiny": _safetensors_dir(work / "tiny", 4, 4096),
                  "105 MB": _safetensors_dir(work / "big", 100, 1 << 20)}
        llmos = str(VENV_BIN / "llmos")
        floors = {"python -c pass": [sys.executable, "-c", "pass"],
                  "python -c \"import sqlalchemy.orm\"": [sys.executable, "-c", "import sqlalchemy.orm"]}
        reg = None
        samples: dict[str, dict[str, list[tuple[float, float]]]] = {m: {} for m in models}
        samples["floor"] = {}
        load = [os.getloadavg()[0]]
        for r in range(rounds + 1):  # round 0 warms up (database, bytecode, entry-point cache)
            for label, path in models.items():
                cli = _run([llmos, "model", "register", "cli", str(path)], env, str(work))
                api = _run([sys.executable, "-c", API, "api", str(path)], env, str(work))
                if reg is None:
                    reg = open_registry()
                c0, t0 = time.process_time(), time.perf_counter()
                reg.register_version("inproc", str(path))
                inproc = (time.perf_counter() - t0, time.process_time() - c0)
                if r:
                    for key, value in (("cli", cli), ("api", api), ("inproc", inproc)):
                        samples[label].setdefault(key, []).append(value)
            for label, cmd in floors.items():
                value = _run(cmd, env, str(work))
                if r:
                    samples["floor"].setdefault(label, []).append(value)
            load.append(os.getloadavg()[0])
        heavy = heavy_modules(["model", "register", "heavy", str(models["tiny"])], env)
        dispose_engines()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)

    def med(values: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)

    out = {label: {k: med(v) for k, v in d.items()} for label, d in samples.items()}
    out["load"] = (min(load), statistics.median(load), max(load))
    out["rounds"] = rounds
    out["heavy"] = heavy
    return out


def register_lines(res: dict) -> list[str]:
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        "### Registry start-up: `llmos model register` vs the Python API",
        "",
        f"Medians of {res['rounds']} rounds, each running every row once (fresh processes for all but the "
        "in-process call; every installed plugin loaded, SQLite). Load average during the run "
        f"{res['load'][0]:.1f}–{res['load'][2]:.1f} (median {res['load'][1]:.1f}) on {os.cpu_count()} CPUs: "
        "wall times are inflated (and scattered) by other work, CPU times much less, so the ratios are "
        "of CPU time.",
        "",
        "| model | CLI, fresh process | API, fresh process | API, in-process | CLI ÷ API fresh | CLI ÷ in-process |",
        "|---|---|---|---|---|---|",
    ]
    for label in ("tiny", "105 MB"):
        r = res[label]
        (cw, cc), (aw, ac), (iw, ic) = r["cli"], r["api"], r["inproc"]
        lines.append(f"| {label} | CPU {ms(cc)} (wall {ms(cw)}) | CPU {ms(ac)} (wall {ms(aw)}) "
                     f"| CPU {ms(ic)} (wall {ms(iw)}) | **{cc / ac:.2f}×** (wall {cw / aw:.2f}×) "
                     f"| {cc / ic:.1f}× (wall {cw / iw:.1f}×) |")
    floor = res["floor"]
    (pw, pc), (sw, sc) = floor["python -c pass"], floor['python -c "import sqlalchemy.orm"']
    (cw, cc), (iw, ic) = res["tiny"]["cli"], res["tiny"]["inproc"]
    start_cpu = cc - ic
    lines += [
        "",
        f"Floors in the same rounds: `python -c pass` {ms(pw)} (CPU {ms(pc)}), "
        f"`python -c \"import sqlalchemy.orm\"` {ms(sw)} (CPU {ms(sc)}).",
        "",
        f"Start-up of the CLI (tiny model: CLI minus the in-process call) is {ms(start_cpu)} of CPU; of it the "
        f"interpreter takes {ms(pc)} and importing SQLAlchemy's ORM {ms(sc - pc)} "
        f"(**{(sc - pc) / start_cpu:.0%}**), which leaves {ms(start_cpu - (sc - pc) - pc)} for llmos itself "
        "(its modules, the ORM classes, the engine, plugins' hook modules, the first query).",
        "",
        'So the CLI costs what the API costs in a fresh process; the gap to an in-process call is Python '
        "start-up, mostly SQLAlchemy's import, which only a process that stays alive avoids (registering many"
        ' models is fastest from one process through the API). llmos adds little on top: a current schema is '
        'one `SELECT` (Alembic is imported only when the stored revision is behind `HEAD_REVISION`), no '
        "plugin's heavy libraries are imported, the entry-point scan is cached per `sys.path` set-up (so "
        "`llmos` and `python` processes no longer evict each other's scan), and the progress bar (rich) is "
        'drawn only on a terminal.',
        "",
        f"Heavy modules imported by `llmos model register` of a safetensors directory: {res['heavy'] or 'none'} "
        "(torch, transformers, numpy, onnxruntime checked).",
        "",
    ]
    return lines


def update_register_section(res: dict) -> str:
    """Replace (or add) the registry start-up subsection of docs/benchmarks/core.md."""
    from benchmarks_stamp import SECTIONS, stamp, write_section  # type: ignore[import-not-found]

    path = SECTIONS / "core.md"
    text = path.read_text() if path.exists() else "## Core start-up\n\n"
    head = text.partition("### Registry start-up")[0]
    lines = register_lines(res)
    block = "\n".join(lines[:2] + [stamp(), ""] + lines[2:])
    return write_section("core", head.rstrip("\n") + "\n\n" + block)


def main() -> str:
    import tempfile

    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    home = tempfile.mkdtemp(prefix="llmos-bench-")
    env = dict(os.environ, LLMOS_HOME=home)
    env.pop("LLMOS_PLUGINS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode written, as an installed llmos has it
    llmos = [str(VENV_BIN / "llmos"), "--help"]
    base = [sys.executable, "-c", "import click, pluggy"]
    plist = [str(VENV_BIN / "llmos"), "plugin", "list"]
    for cmd in (llmos, base, plist):  # warm caches (entry-point cache, page cache)
        _time(cmd, env)
    a, b, c = [], [], []
    load = [os.getloadavg()[0]]
    for _ in range(30):
        a.append(_time(llmos, env))
        b.append(_time(base, env))
        c.append(_time(plist, env))
        load.append(os.getloadavg()[0])
    ra, rb, rc = statistics.median(a), statistics.median(b), statistics.median(c)
    n_plugins = len(json.loads(subprocess.run([str(VENV_BIN / "llmos"), "plugin", "list", "--json"], env=env,
                                             capture_output=True, text=True).stdout or "[]"))
    heavy_help = heavy_modules(["--help"], env)
    heavy_list = heavy_modules(["plugin", "list"], env)
    ratio = ra / rb
    write_section("core", "\n".join([
        "## Core start-up",
        "",
        stamp(),
        "",
        f"With {n_plugins} installed plugins loaded. Medians of 30 alternating runs in fresh processes. "
        f"Load average during the run {min(load):.1f}–{max(load):.1f} on {os.cpu_count()} CPUs.",
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
    return update_register_section(bench_register_startup())


if __name__ == "__main__":
    if "--register" in sys.argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(update_register_section(bench_register_startup()))
    else:
        print(main())
