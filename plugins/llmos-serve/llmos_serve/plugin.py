"""llmos-serve hook module (light: imports only llmos and click).

Provides the ``deployment.openai-server`` component and the ``llmos serve`` /
``llmos deploy`` commands.
"""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_deployment_steps(register):  # type: ignore[no-untyped-def]
    from llmos_serve.config import ServeConfig

    register(
        "openai-server",
        "llmos_serve.step:ServeStep",
        config=ServeConfig,
        description="OpenAI-compatible HTTP server with dynamic batching, alias following and canary",
    )


@hookimpl
def llmos_register_commands(cli):  # type: ignore[no-untyped-def]
    from llmos_serve.cli import register

    register(cli)
