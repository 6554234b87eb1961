"""The run context: what a pipeline step sees.

A step (the object a component's factory returns) has ``run(ctx)``. Steps talk
to each other only through ``ctx.artifacts`` — a dict whose keys and value
protocols are declared in :mod:`llmos.artifacts` (``MODEL.get(ctx)``...) — and talk
to the platform through the methods here: metrics, progress, checkpoints,
registering model versions. The core knows nothing about what an artifact is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass
class RunContext:
    """State shared by the stages of one pipeline run.

    :ivar run_id: the registry id of this run (``None`` for an unrecorded run).
    :ivar spec: the validated pipeline spec (``spec.name``, ``spec.model``, ``spec.stages``).
    :ivar workdir: a directory private to this run (checkpoints, exports, reports).
    :ivar seed: the run's random seed; steps derive theirs from it.
    :ivar artifacts: values passed between stages (``"dataset"``, ``"tokenizer"``,
        ``"model"``, ``"model_version"``...).
    :ivar stage: the spec of the stage now running (``stage.id``, ``stage.use``).
    :ivar resume: True when the run is resumed (``llmos run --resume``): steps continue
        from what they left in :meth:`checkpoint_dir`.
    :ivar nproc: data-parallel processes a step may use (``llmos run --nproc``).
    """

    run_id: str | None
    spec: Any
    workdir: Path
    seed: int = 0
    artifacts: dict[str, Any] = field(default_factory=dict)
    stage: Any = None
    resume: bool = False
    manager: Any = None  # llmos.plugins.PluginManager
    stop_event: threading.Event = field(default_factory=threading.Event)
    _metric_writer: Callable[[str, int | None, dict[str, float]], None] | None = None
    _progress_factory: Callable[..., Any] | None = None
    _version_registrar: Callable[..., Any] | None = None
    _child_factory: Callable[..., Any] | None = None
    nproc: int = 1

    # -- standalone (tests, notebooks) ----------------------------------------------

    @classmethod
    def standalone(cls, workdir: Path | str, *, artifacts: dict[str, Any] | None = None, seed: int = 0,
                   manager: Any = None, stage_id: str = "test") -> RunContext:
        """A context for running one step outside a pipeline (a plugin's own tests)::

            ctx = RunContext.standalone(tmp_path, artifacts={"dataset": ds})
            MyStep(MyConfig()).run(ctx)
            assert ctx.logged[-1] == ("train", 10, {"loss": ...})

        Metrics go to ``ctx.logged`` (``(kind, step, metrics)`` tuples) and to the
        plugins of ``manager`` if given; ``ctx.stage.id`` is ``stage_id``; no registry.
        """
        from types import SimpleNamespace

        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        logged: list[tuple[str, int | None, dict[str, float]]] = []
        ctx = cls(run_id=None, spec=SimpleNamespace(name="standalone", model=None, stages=[]), workdir=path,
                  seed=seed, artifacts=dict(artifacts or {}), manager=manager,
                  stage=SimpleNamespace(id=stage_id, use=f"?.{stage_id}", config=None))
        ctx._metric_writer = lambda kind, step, metrics: logged.append((kind, step, dict(metrics)))
        ctx.logged = logged  # type: ignore[attr-defined]
        return ctx

    # -- metrics -------------------------------------------------------------------

    def log_metrics(self, step: int | None, metrics: dict[str, float], *, kind: str = "train") -> None:
        """Record metrics of this run and tell plugins.

        :param step: global step (``None`` for a one-off value).
        :param metrics: name → float.
        :param kind: ``"train"`` (calls ``llmos_after_train_step``), ``"eval"``
            (calls ``llmos_after_evaluate``) or anything else (``llmos_after_metrics``).
        """
        clean = {k: float(v) for k, v in metrics.items()}
        if self._metric_writer is not None:
            self._metric_writer(kind, step, clean)
        if self.manager is not None:
            if kind == "train":
                self.manager.notify("llmos_after_train_step", ctx=self, step=step, metrics=clean)
            elif kind == "eval":
                self.manager.notify("llmos_after_evaluate", ctx=self, step=step, metrics=clean)
            else:
                self.manager.notify("llmos_after_metrics", source=f"run:{self.run_id}:{kind}", step=step, metrics=clean)

    # -- progress ------------------------------------------------------------------

    def progress(self, total: int | None, description: str, unit: str = "it") -> Any:
        """A progress reporter: ``with ctx.progress(n, "training") as p: p.update(1, loss=...)``.

        The runner supplies a live terminal display; without one this is silent.
        """
        if self._progress_factory is not None:
            return self._progress_factory(total=total, description=description, unit=unit)
        return NullProgress()

    # -- checkpoints and stopping ------------------------------------------------

    def checkpoint_dir(self, stage_id: str | None = None) -> Path:
        """Directory where the current (or named) stage keeps resumable checkpoints."""
        sid = stage_id or (self.stage.id if self.stage is not None else "run")
        path = self.workdir / "checkpoints" / sid
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def should_stop(self) -> bool:
        """True once the user asked to stop (Ctrl-C): save a checkpoint and return."""
        return self.stop_event.is_set()

    # -- registry ------------------------------------------------------------------

    def register_version(self, path: Path | str, **kwargs: Any) -> Any:
        """Register the model files in ``path`` (Hugging Face layout) as a new version
        of the pipeline's model, with this run recorded in its lineage.

        Keyword arguments are passed to the registry (``metrics``, ``parents``,
        ``tags``, ``description``, ``lineage``, ``model`` to override the name).
        :returns: the registered version.
        """
        if self._version_registrar is None:
            raise RuntimeError("this run is not connected to a registry")
        return self._version_registrar(Path(path), **kwargs)


    # -- child runs ----------------------------------------------------------------

    @contextmanager
    def child_run(self, name: str, config: dict[str, Any] | None = None) -> Iterator[RunContext]:
        """A recorded child run of this run (a grid-search trial, a sweep point)::

            with ctx.child_run("trial-1", {"lr": 1e-3}) as child:
                MODEL.set(child, copy_of_model)   # llmos.artifacts keys
                train(child)                      # metrics go to the child run
                METRICS.set(child, {...})         # becomes the child's summary

        The child has its own ``run_id`` and ``workdir``, shares the plugin manager,
        progress display and stop event. It is finished ``completed``, ``failed`` or
        ``interrupted`` when the block exits. Resuming the parent resumes an unfinished
        child with the same name (same ``run_id`` and ``workdir``, ``resume=True``).
        """
        if self._child_factory is not None:
            with self._child_factory(self, name, dict(config or {})) as child:
                yield child
            return
        child = replace(
            self, run_id=None, workdir=self.workdir / "children" / name, artifacts=dict(self.artifacts),
            _metric_writer=None,
        )
        child.workdir.mkdir(parents=True, exist_ok=True)
        yield child


class NullProgress:
    """A progress reporter that shows nothing (``ctx.progress`` without a display)."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, advance: float = 1, **fields: Any) -> None:
        return None

    def close(self) -> None:
        return None
