"""The plugin as llmos loads it: contract, light hook module, commands present."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

HEAVY = ("torch", "numpy", "matplotlib", "fastapi", "uvicorn", "psutil", "prometheus_client", "sqlalchemy", "jinja2")


def test_plugin_contract() -> None:
    import llmos_monitor.plugin
    from llmos.testing import check_plugin_contract

    check_plugin_contract(llmos_monitor.plugin, "llmos-monitor")


def test_hook_module_and_commands_import_nothing_heavy() -> None:
    probe = (
        "import sys, json\n"
        "from llmos.cli import main\n"
        "try:\n    main(['monitor', '--help'], prog_name='llmos')\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['ui', '--help'], prog_name='llmos')\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    cp = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                        env={"LLMOS_PLUGINS": "llmos-monitor,llmos-registry", "PATH": "/usr/bin:/bin",
                             "LLMOS_HOME": "/tmp/llmos-monitor-light-test"})
    assert "llmos monitor" in cp.stdout and "llmos ui" in cp.stdout, cp.stdout + cp.stderr
    assert json.loads(cp.stderr.strip().splitlines()[-1]) == []


def test_components_are_registered(standard_plugins: Any) -> None:
    manager = standard_plugins("llmos-monitor")
    refs = {c.ref for c in manager.components("monitoring")}
    assert {"monitoring.prometheus", "monitoring.plot"} <= refs
    assert manager.plugins["llmos-monitor"].status == "ok"
