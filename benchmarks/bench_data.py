"""Data stage memory on a large corpus: `data.corpus` on ~1 GB of text stays under 2 GB.

A synthetic corpus (``llmos_data.synthetic``: Zipf-distributed pseudo-words in
sentences, blank-line separated documents, 64 MB files) of ``LLMOS_BENCH_DATA_MB``
megabytes (default 1024) and one 16x smaller are each loaded by the data stage — read,
cleaned, exact + near dedup, split, BPE tokenizer trained (on the first 100 MB), packed
into memory-mapped blocks — in a fresh process with an empty ``$LLMOS_HOME``. Peak
resident memory (``ru_maxrss``) and wall time are measured side by side.

Reported ratios: peak RSS / corpus size (target < 2 GB absolute, i.e. well under 2x the
corpus), and peak RSS of the large run / the small run (≈1 when memory does not grow
with the corpus), and throughput in MB/s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_stamp import write_section  # type: ignore[import-not-found]


_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from llmos.context import RunContext
from llmos_data.config import CorpusConfig
from llmos_data.corpus import CorpusStep
src, work = sys.argv[1], Path(sys.argv[2])
t0 = time.perf_counter()
step = CorpusStep(CorpusConfig(paths=[src], split_paragraphs=True, vocab_size=8192, block_size=256))
ctx = RunContext(run_id=None, spec=None, workdir=work)
step.run(ctx)
ds = ctx.artifacts["dataset"]
train = ds.split("train")
checksum = int(train[:: max(1, len(train) // 1000)].sum())  # touch the memory map
print(json.dumps({
    "seconds": time.perf_counter() - t0,
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "bytes_read": ds.stats["bytes_read"], "documents": ds.stats["documents_kept"],
    "dropped": ds.stats["documents_dropped"], "tokens": ds.stats["tokens"], "blocks": ds.stats["blocks"],
    "checksum": checksum,
}))
"""


def _run(src: Path, root: Path) -> dict:
    env = dict(os.environ, LLMOS_HOME=str(root / "home"))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(root / "work")], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> str:
    from llmos_data.synthetic import write_synthetic_corpus

    size_mb = int(os.environ.get("LLMOS_BENCH_DATA_MB", "1024"))
    small_mb = max(1, size_mb // 16)
    base = Path(tempfile.mkdtemp(prefix="llmos-bench-data-"))
    try:
        results = {}
        for label, mb, seed in (("small", small_mb, 1), ("large", size_mb, 2)):
            src = base / f"corpus-{label}"
            t0 = time.perf_counter()
            write_synthetic_corpus(src, mb << 20, seed=seed)
            gen_s = time.perf_counter() - t0
            corpus_bytes = sum(f.stat().st_size for f in src.iterdir())
            print(f"  {label}: {corpus_bytes / 2**20:.0f} MB corpus written in {gen_s:.0f}s; loading…", flush=True)
            r = _run(src, base / f"run-{label}")
            r["corpus_bytes"] = corpus_bytes
            results[label] = r
            shutil.rmtree(base / f"run-{label}", ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    big, small = results["large"], results["small"]
    gib = 2**30

    def row(label: str, r: dict) -> str:
        return (
            f"| {label} | {r['corpus_bytes'] / 2**20:,.0f} MB | {r['documents']:,} | "
            f"{sum(r['tokens'].values()) / 1e6:,.1f} M | {r['seconds']:,.0f} s | "
            f"{r['corpus_bytes'] / 2**20 / r['seconds']:.1f} MB/s | {r['peak_rss'] / 2**20:,.0f} MB | "
            f"{r['peak_rss'] / r['corpus_bytes']:.2f} |"
        )

    verdict = "met" if big["peak_rss"] < 2 * gib else "NOT met"
    text = "\n".join(
        [
            "## Data stage on a large corpus (`data.corpus`)",
            "",
            "`benchmarks/bench_data.py`: a synthetic corpus loaded by the data stage (read, clean, exact + near "
            "dedup, split, BPE 8192 trained on the first 100 MB, packed into uint16 memory-mapped blocks of 256) "
            "in a fresh process; peak RSS from `getrusage`.",
            "",
            "| corpus | size | documents kept | tokens | time | throughput | peak RSS | peak RSS / corpus |",
            "|---|---|---|---|---|---|---|---|",
            row("small (1/16)", small),
            row("large", big),
            "",
            f"- peak RSS, large / small corpus: **{big['peak_rss'] / small['peak_rss']:.2f}x** for "
            f"{big['corpus_bytes'] / small['corpus_bytes']:.0f}x more text: documents stream from disk; what grows "
            f"is the dedup state, measured here at "
            f"~{(big['peak_rss'] - small['peak_rss']) / max(1, big['documents'] - small['documents']):,.0f} bytes per "
            f"kept document (sha256 + MinHash signature + LSH band keys)",
            f"- peak RSS on the large corpus: **{big['peak_rss'] / 2**20:,.0f} MB** "
            f"({big['peak_rss'] / big['corpus_bytes']:.2f}x the corpus) — target < 2 GB: **{verdict}**",
            f"- throughput ratio large / small: {(big['corpus_bytes'] / big['seconds']) / (small['corpus_bytes'] / small['seconds']):.2f}"
            f" (times are wall clock; 1-minute load average at the end of the run: {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores, so absolute MB/s depend on the machine's other work)",
            "",
        ]
    )
    return write_section("data", text)


if __name__ == "__main__":
    print(main())
