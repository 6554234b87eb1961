"""Root conftest of the llmos repository: opt-in pytest plugins for its own tests.

The PostgreSQL harness is not part of the core nor of the ``llmos.testing`` pytest11
plugin (which is loaded into every pytest session wherever llmos is installed): it is
the test-support distribution in ``tests/postgres``, loaded here. ``make install``
installs it; a checkout whose environment predates it still finds it on the path.
"""

import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("llmos_testing_postgres") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "tests" / "postgres"))

pytest_plugins = ["llmos_testing_postgres"]
