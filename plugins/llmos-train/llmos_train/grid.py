"""``optimizer.grid-search``: every combination of settings is one trial, recorded as
a child run of the pipeline run; the best trial's model replaces ``ctx.artifacts["model"]``.

The best trial is chosen on the validation split; when the dataset has a held-out
``test`` split, the chosen model is scored on it (``test_loss``, ``test_ppl``): the
selection never sees the test split, the report does. ``parallel = N`` trains up to
N trials at once in separate processes (:mod:`llmos_train.parallel_trials`).

Each trial trains a copy of the incoming (untrained) model, so trials do not
influence each other. Finished trials are kept in ``trials.json`` in the stage's
checkpoint directory: a resumed run skips them and continues an interrupted trial
from its own checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

from llmos_train.config import GridSearchConfig, TrainConfig
from llmos_train.step import inputs, lineage, train_in_context
from llmos.sdk import LINEAGE, METRICS, MODEL


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _test_blocks(ctx: Any) -> Any:
    from llmos.sdk import DATASET

    ds = DATASET.get(ctx)
    if ds is None or "test" not in (getattr(ds, "splits", None) or ()):
        return None
    return ds.split("test")


class GridSearchStep:
    """Train one copy of the model per grid point and keep the best by validation loss."""

    def __init__(self, config: GridSearchConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        from safetensors.torch import load_model

        cfg = self.config
        model, train_blocks, val_blocks = inputs(ctx, "optimizer.grid-search")
        state_path = ctx.checkpoint_dir() / "trials.json"
        done: dict[str, Any] = json.loads(state_path.read_text()) if (ctx.resume and state_path.exists()) else {}
        trials = cfg.trials()

        def record(name: str, settings: dict[str, Any], child: Any, metrics: dict[str, Any],
                   checkpoint: str | None) -> None:
            done[name] = {"trial": name, "run_id": child.run_id, "settings": settings, "checkpoint": checkpoint,
                          **metrics}
            _write_json(state_path, done)
            ctx.log_metrics(int(name.rsplit("-", 1)[1]), {cfg.metric: metrics.get(cfg.metric, math.inf)},
                            kind="trial")

        todo = [(f"trial-{i}", s) for i, s in enumerate(trials, start=1) if f"trial-{i}" not in done]
        if cfg.parallel > 1 and len(todo) > 1:
            from llmos_train.parallel_trials import run_parallel

            run_parallel(ctx, todo, model, train_blocks, val_blocks, cfg.parallel,
                         lambda name, settings, child, out: record(name, settings, child, out["metrics"],
                                                                   out["checkpoint"]))
            todo = []
        for name, settings in todo:
            tcfg = TrainConfig.model_validate(settings)
            trial_model = copy.deepcopy(model)
            with ctx.child_run(name, {"trial": name, "settings": tcfg.model_dump(mode="json")}) as child:
                MODEL.set(child, trial_model)
                result = train_in_context(child, tcfg, trial_model, train_blocks, val_blocks)
                if result.stopped == "interrupted":
                    return {"interrupted_at": name}
                METRICS.set(child, dict(result.metrics))
            record(name, settings, child, result.metrics, result.checkpoint)
            del trial_model
        ranked = sorted(done.values(), key=lambda r: r.get(cfg.metric, math.inf))
        best = ranked[0]
        if not best.get("checkpoint"):
            raise RuntimeError("the best trial left no checkpoint to load")
        load_model(model, str(Path(best["checkpoint"]) / "model.safetensors"))
        model.eval()
        params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        metrics = {k: v for k, v in best.items() if isinstance(v, float)}
        metrics["params"] = float(params)
        test = _test_blocks(ctx)
        if test is not None and len(test):  # selected on validation, reported on the held-out test split
            from llmos_train.loop import evaluate

            scored = evaluate(model, test, max(1, int(best["settings"].get("batch_size", 8))))
            metrics.update({k.replace("val_", "test_", 1): v for k, v in scored.items()})
        METRICS.set(ctx, metrics)
        summary = [{"trial": r["trial"], "run_id": r["run_id"], "settings": {k: r["settings"][k] for k in cfg.grid},
                    cfg.metric: r.get(cfg.metric)} for r in ranked]
        best_cfg = TrainConfig.model_validate(best["settings"])

        class _R:  # what lineage() reads
            step = int(best.get("steps", 0))

        LINEAGE.set(ctx, lineage(ctx, best_cfg, _R(), method="grid-search", best_trial=best["trial"],
                                 trials=summary))
        return {"best_trial": best["trial"], "trials": len(trials), **{k: v for k, v in metrics.items()}}

    __call__ = run
