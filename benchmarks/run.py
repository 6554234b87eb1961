"""Run every benchmark and write docs/benchmarks.md.

Each ``benchmarks/bench_<area>.py`` has ``main() -> str`` returning a markdown
section (and writing it to ``docs/benchmarks/<area>.md``). Figures are ratios
measured side by side in one run, so they mean something on a noisy machine.

    python benchmarks/run.py              # all
    python benchmarks/run.py core train   # some
    python benchmarks/run.py --collect    # only rebuild docs/benchmarks.md from the sections
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import platform
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    collect_only = "--collect" in argv
    wanted = set(argv) - {"--collect"}
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        area = path.stem.removeprefix("bench_")
        if collect_only or (wanted and area not in wanted):
            continue
        print(f"== {area}", flush=True)
        try:
            text = load(path).main()
        except Exception:  # noqa: BLE001 - report and go on with the others
            traceback.print_exc()
            failed.append(area)
            continue
        print(text)  # the script wrote it to docs/benchmarks/<area>.md (benchmarks_stamp.write_section)
    order = ["gpu", "core", "registry", "data", "train", "lora", "compress", "serve", "constrain", "scale", "monitor",
             "community"]
    sections = sorted(
        (DOCS / "benchmarks").glob("*.md"),
        key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem),
    )
    head = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run.py`). Every figure is a ratio measured side by side",
        "in one run on the same machine (alternating the two sides), never an absolute time compared",
        "across runs. Each section says when and where it was last measured.",
        "",
    ]
    body = [s.read_text().rstrip() + "\n" for s in sections]
    (DOCS / "benchmarks.md").write_text("\n".join(head) + "\n" + "\n".join(body))
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
