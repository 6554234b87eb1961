"""`llmos` with the toy steps plugin registered in code: for tests that need a real
process (signals). Usage: python run_cli.py run FILE [options]."""

import importlib.util
import sys
from pathlib import Path

from llmos.plugins import PluginManager, set_manager
from llmos.testing import registry_plugins

spec = importlib.util.spec_from_file_location("llmos_test_steps_plugin", Path(__file__).with_name("steps_plugin.py"))
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
manager = PluginManager(load_entrypoints=False)
manager.register(mod, name="toy")
for name, obj in registry_plugins().items():  # runs are recorded through it
    manager.register(obj, name=name)
set_manager(manager)

from llmos.cli import main  # noqa: E402

main(sys.argv[1:], prog_name="llmos")
