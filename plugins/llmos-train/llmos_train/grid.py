"""``optimizer.grid-search``: every combination of settings is one trial, recorded as
a child run of the pipeline run; the best trial's model replaces ``ctx.artifacts["model"]``.

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
from llmos.artifacts import LINEAGE, METRICS, MODEL


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


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
        for i, settings in enumerate(trials, start=1):
            name = f"trial-{i}"
            if name in done:
                continue
            tcfg = TrainConfig.model_validate(settings)
            trial_model = copy.deepcopy(model)
            with ctx.child_run(name, {"trial": name, "settings": tcfg.model_dump(mode="json")}) as child:
                MODEL.set(child, trial_model)
                result = train_in_context(child, tcfg, trial_model, train_blocks, val_blocks)
                if result.stopped == "interrupted":
                    return {"interrupted_at": name}
                METRICS.set(child, dict(result.metrics))
            done[name] = {"trial": name, "run_id": child.run_id, "settings": settings, "checkpoint": result.checkpoint,
                          **result.metrics}
            _write_json(state_path, done)
            score = result.metrics.get(cfg.metric, math.inf)
            ctx.log_metrics(i, {cfg.metric: score}, kind="trial")
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
