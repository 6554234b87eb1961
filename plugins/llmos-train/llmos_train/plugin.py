"""Hook module of llmos-train (light: imports only llmos)."""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_optimizer_steps(register):
    from llmos_train.config import GridSearchConfig, TrainConfig
    from llmos_train.lora import LoraConfig

    register(
        "train",
        "llmos_train.step:TrainStep",
        config=TrainConfig,
        description="Training loop: AdamW/Adam/SGD/LAMB, warmup/cosine/noam schedules, grad accumulation, "
        "clipping, eval (loss, perplexity), safetensors checkpoints, exact resume, early stopping, DDP",
    )
    register(
        "lora",
        "llmos_train.lora:LoraStep",
        config=LoraConfig,
        description="LoRA fine-tuning (peft) of a registered base: trains only low-rank adapters; registered "
        "as an adapter version (its tensors only) whose parent is the base",
    )
    register(
        "grid-search",
        "llmos_train.grid:GridSearchStep",
        config=GridSearchConfig,
        description="Hyper-parameter grid search: each trial trains a copy of the model in a recorded "
        "child run; keeps the best by validation loss",
    )
