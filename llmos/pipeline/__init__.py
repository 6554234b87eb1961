"""Pipelines: a TOML file of stages (:mod:`llmos.pipeline.spec`) run and recorded by
:mod:`llmos.pipeline.runner`.

    from llmos.pipeline import load_pipeline, run_pipeline
    result = run_pipeline(load_pipeline("pipelines/quickstart.toml", ["pipeline.seed=3"]))

Importing this package does not import torch (nor the registry: the runner opens
it when a run starts).
"""

from llmos.pipeline.spec import Pipeline, PipelineError, Stage, load_pipeline, validate_pipeline

__all__ = ["Pipeline", "PipelineError", "Stage", "load_pipeline", "validate_pipeline", "run_pipeline", "RunResult"]


def __getattr__(name: str):  # lazy: the runner pulls in rich and the registry on use
    if name in ("run_pipeline", "RunResult"):
        from llmos.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(name)
