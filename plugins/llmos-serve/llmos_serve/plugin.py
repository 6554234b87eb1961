"""llmos-serve hook module (light: imports only llmos and click).

Provides the ``deployment.openai-server`` and ``deployment.promote`` components, the ``eager``
and ``ort`` serving engines and the ``llmos serve`` / ``llmos deploy`` commands.
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
    from llmos_serve.promote_step import PromoteConfig

    register(
        "promote",
        "llmos_serve.promote_step:PromoteStep",
        config=PromoteConfig,
        description="Move an alias to the version the run registered, if a rule on its metrics holds",
    )


@hookimpl
def llmos_register_serving_engines(register):  # type: ignore[no-untyped-def]
    register("eager", "llmos_serve.engines:eager_engine",
             description="PyTorch: continuous batching with a KV cache; every PyTorch version (int8 included)")
    register("ort", "llmos_serve.engines:ort_engine",
             description="ONNX Runtime: continuous batching with a KV cache; ONNX versions, and PyTorch versions "
             "exported once into the engine cache (needs llmos-export)")


@hookimpl
def llmos_register_commands(cli):  # type: ignore[no-untyped-def]
    # imported when used: ``llmos --help`` shows these lines without importing the module
    cli.add_lazy_command("serve", "llmos_serve.cli:serve", "Serve MODEL_REF with an OpenAI-compatible HTTP API.")
    cli.add_lazy_command("deploy", "llmos_serve.cli:deploy",
                         "Move aliases between versions: promote a version, roll back.")
