"""The ``deployment.openai-server`` pipeline step."""

from __future__ import annotations

from typing import Any

from llmos.sdk import MODEL_VERSION, SERVER, SERVER_URL, ValidationError

from llmos_serve.config import ServeConfig


class ServeStep:
    """Serve a model from a pipeline.

    ``model`` defaults to the version the run registered last
    (``ctx.artifacts["model_version"]``). With ``block = true`` (default) the
    step serves until interrupted; with ``block = false`` it starts the server
    in the background and puts it in ``ctx.artifacts["server"]`` (its URL in
    ``ctx.artifacts["server_url"]``) for later stages.
    """

    def __init__(self, config: ServeConfig | None = None) -> None:
        self.config = config or ServeConfig()

    def run(self, ctx: Any) -> dict[str, Any]:
        model = self.config.model or MODEL_VERSION.get(ctx)
        if not model:
            raise ValidationError(
                "deployment.openai-server: nothing to serve; set model = 'name@alias' or register a version first"
            )
        import os

        update: dict[str, Any] = {"model": str(model)}
        if self.config.api_key is None and os.environ.get("LLMOS_API_KEY"):
            update["api_key"] = os.environ["LLMOS_API_KEY"]  # keys come from the environment, not pipeline files
        config = self.config.model_copy(update=update)
        if config.block:
            from llmos_serve.server import serve

            serve(config)
            return {"model": config.model}
        from llmos_serve.server import BackgroundServer

        server = BackgroundServer(config).start()
        SERVER.set(ctx, server)
        SERVER_URL.set(ctx, server.url)
        return {"model": config.model, "url": server.url}

    __call__ = run
