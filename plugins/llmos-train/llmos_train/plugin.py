"""Hook module of llmos-train (light: imports only llmos)."""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_optimizer_steps(register):
    from llmos_train.config import GridSearchConfig, TrainConfig
    from llmos_train.lora_model import LoraConfig

    register(
        "train",
        "llmos_train.step:TrainStep",
        config=TrainConfig,
        description="Training loop: any registered optimizer and LR schedule (adamw/adam/sgd/lamb, "
        "warmup/cosine/noam built in), grad accumulation, clipping, eval (loss, perplexity), safetensors "
        "checkpoints, exact resume, early stopping, DDP",
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


@hookimpl
def llmos_register_optimizers(register):
    from llmos_train.config import AdamConfig, LambConfig, SgdConfig

    register("adamw", "llmos_train.optim:adamw", config=AdamConfig,
             description="AdamW (torch.optim.AdamW; fused kernel on CUDA)")
    register("adam", "llmos_train.optim:adam", config=AdamConfig,
             description="Adam (torch.optim.Adam; weight decay is L2 added to the gradient)")
    register("sgd", "llmos_train.optim:sgd", config=SgdConfig, description="SGD with (Nesterov) momentum")
    register("lamb", "llmos_train.optim:lamb", config=LambConfig,
             description="LAMB: layer-wise adaptive moments (You et al. 2019)")


@hookimpl
def llmos_register_lr_schedules(register):
    from llmos_train.config import CosineConfig, NoamConfig, NoSettings

    register("constant", "llmos_train.schedules:constant_schedule", config=NoSettings,
             description="lr · 1")
    register("linear-warmup", "llmos_train.schedules:linear_warmup_schedule", config=NoSettings,
             description="lr · min(1, step / warmup)")
    register("cosine", "llmos_train.schedules:cosine_schedule", config=CosineConfig,
             description="linear warmup, then cosine decay to min_lr_ratio · lr")
    register("noam", "llmos_train.schedules:noam_schedule", config=NoamConfig,
             description="d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) (Vaswani et al. 2017)")
