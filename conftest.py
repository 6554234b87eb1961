"""Root conftest of the llmos repository: opt-in pytest plugins for its own tests.

The PostgreSQL harness is not part of the ``llmos.testing`` pytest11 plugin (which is
loaded into every pytest session wherever llmos is installed); the tests of this
repository load it here.
"""

pytest_plugins = ["llmos.testing_pg"]
