"""Targets of the layout (issue 17): no source file over 600 lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600


def _tracked_sources() -> list[Path]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "*.py"],
                         capture_output=True, text=True, check=True).stdout.split()
    # Alembic revisions are generated, append-only history, not code anyone reads as a module
    return [ROOT / p for p in out if "/migrations/versions/" not in p and (ROOT / p).is_file()]


def test_no_source_file_over_600_lines():
    files = _tracked_sources()
    assert len(files) > 200  # the tree was read
    long = sorted(f"{p.relative_to(ROOT)}: {n} lines" for p in files
                  if (n := len(p.read_text(errors="replace").splitlines())) > MAX_LINES)
    assert not long, f"split these into cohesive modules (at most {MAX_LINES} lines each):\n" + "\n".join(long)


#: issue 17: the core a newcomer reads (llmos/, migrations aside: the core has none now)
MAX_CORE_LINES = 6500


def test_the_core_stays_small():
    core = [p for p in _tracked_sources() if p.is_relative_to(ROOT / "llmos")]
    assert len(core) > 30  # the core was read
    total = sum(len(p.read_text(errors="replace").splitlines()) for p in core)
    assert total <= MAX_CORE_LINES, (
        f"the core is {total} lines (budget {MAX_CORE_LINES}): what does work belongs in a plugin")


def test_the_core_needs_no_database_library():
    """SQLAlchemy and Alembic are the registry plugin's dependencies, not the core's."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if d.lower().startswith(("sqlalchemy", "alembic"))]
    imports = [f"{p.relative_to(ROOT)}" for p in _tracked_sources() if p.is_relative_to(ROOT / "llmos")
               and any(w in p.read_text() for w in ("import sqlalchemy", "from sqlalchemy", "import alembic",
                                                     "from alembic"))]
    assert imports == []
