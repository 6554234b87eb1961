"""`llmos --help` and `llmos plugin list` never import heavy libraries — with every
installed plugin (standard ones included) loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "numpy", "onnxruntime", "sqlalchemy", "fastapi")

PROBE = """
import sys, json
from llmos.cli import main
try:
    main({args!r}, prog_name="llmos")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["plugin", "list"], ["model", "--help"], ["model", "list"], ["runs", "list"]], ids=" ".join
)
def test_no_heavy_imports(args, tmp_path):
    env = dict(os.environ, LLMOS_HOME=str(tmp_path))
    env.pop("LLMOS_PLUGINS", None)  # every installed plugin
    cp = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)], capture_output=True,
                        text=True, env=env, timeout=120)
    imported = json.loads(cp.stderr.strip().splitlines()[-1])
    # reading the registry needs SQLAlchemy; nothing needs torch, numpy or a server
    heavy = [m for m in imported if not (args[-1] == "list" and m == "sqlalchemy")]
    assert heavy == [], f"llmos {' '.join(args)} imported {heavy}"
