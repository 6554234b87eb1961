"""Add (or release a new version of) a standard plugin's index entry.

Run by a core maintainer who holds the founding keys (see GOVERNANCE.md)::

    LLMOS_HOME=/path/to/keys-home python registry/tools/add_standard_plugin.py llmos-data [llmos-train ...]

For each plugin it:

1. exports ``plugins/<dist>`` as committed at ``HEAD`` (``git archive``; never the
   working tree), so the entry names a commit anyone can rebuild from;
2. builds the wheel with ``pip wheel --no-deps --no-build-isolation`` and
   ``SOURCE_DATE_EPOCH`` = that commit's time (same source + same setuptools → same bytes);
3. writes ``plugins/<dist>/plugin.toml`` and ``versions/<version>.toml`` through
   ``llmos contrib submit`` logic, signed by the ``llmos-core`` release key (consent),
4. signs the two founding index maintainers' approvals (``index-founder-1``, ``-2``).

The wheels land in ``--wheelhouse`` (default ``dist/wheelhouse``); they are not
committed. Tests rebuild them the same way (tests/community).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from llmos.community import contrib
from llmos.community.index import DirSource, load_index

REPO = Path(__file__).resolve().parents[2]
CORE_HANDLE = "llmos-core"
FOUNDERS = ("index-founder-1", "index-founder-2")


def export_at(commit: str, subdir: str, dest: Path) -> None:
    data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, subdir],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dists", nargs="+")
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--wheelhouse", type=Path, default=REPO / "dist" / "wheelhouse")
    args = ap.parse_args(argv)
    index_root = REPO / "registry"
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", args.commit], capture_output=True, text=True,
                            check=True).stdout.strip()
    for dist in args.dists:
        subdir = f"plugins/{dist}"
        epoch = int(subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct", commit, "--", subdir],
                                   capture_output=True, text=True, check=True).stdout.strip())
        with tempfile.TemporaryDirectory() as tmp:
            export_at(commit, subdir, Path(tmp))
            res = contrib.submit(Path(tmp) / subdir, CORE_HANDLE, index_root, wheelhouse=args.wheelhouse,
                                 source_url=".", source_commit=commit, subdirectory=subdir, epoch=epoch,
                                 security_contact="GOVERNANCE.md#security-policy", record=False)
        print(f"{res.name} {res.version}: {res.kind}, digest {res.digest}")
        if res.kind == "new-plugin":
            entry = load_index(DirSource(index_root)).find(res.name)
            for handle in FOUNDERS:
                contrib.sign_review(index_root, entry, handle, "approve", "plugin")
                print(f"  approved by {handle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
