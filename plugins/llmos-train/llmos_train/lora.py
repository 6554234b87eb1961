"""``optimizer.lora``: parameter-efficient fine-tuning with LoRA (through peft).

The step wraps ``ctx.artifacts["model"]`` — a registered base, so the adapter can
name its parent — in a peft LoRA model, trains only the adapter's matrices with the
same loop as ``optimizer.train`` (every TrainConfig setting applies), and leaves the
peft model in ``ctx.artifacts["model"]``. ``model.register`` then stores only the
adapter (see ``llmos_models.adapter``), as a version whose parent is the base.

Reduced-precision bases (QLoRA-style), where the device supports them:

- ``quantize = "bf16"``: the frozen base computes in bfloat16, the adapter's matrices
  stay fp32. Fast where the CPU has bf16 instructions (AVX512-BF16, AMX) and on
  CUDA GPUs; on other CPUs it runs, slower. The registered adapter is plain fp32 and
  loads on the fp32 base.
- ``quantize = "nf4"`` / ``"int8"``: the base reloaded quantized by bitsandbytes, whose
  kernels need a CUDA GPU: on any other device the config itself is refused (so a
  pipeline is refused when it is read, located at the setting, before any stage runs).
  The quantizer places the base on its GPU; the loop leaves it there (no ``.to()``).

Under DDP (``nproc > 1``) each worker rebuilds the same peft model (``llmos_train.ddp``);
only the adapter's matrices require gradients, so only they are synchronised.

The config and the peft model surgery (also run by each DDP worker) are
:mod:`llmos_train.lora_model`; this module is the pipeline step. Both import only
pydantic at import time (the hook reads the config).
"""

from __future__ import annotations

from typing import Any

from llmos.sdk import LINEAGE, METRICS, MODEL, MODEL_VERSION

from llmos_train.lora_model import LoraConfig, attach_lora, quantized_base

__all__ = ["LoraConfig", "LoraStep", "attach_lora"]

class LoraStep:
    """Train a LoRA adapter on the registered base in ``ctx.artifacts["model"]``.

    Needs ``ctx.artifacts["model_version"]`` (put ``model.register`` or ``model.load``
    before it): the adapter is registered as a child of that version.
    """

    def __init__(self, config: LoraConfig | None = None) -> None:
        self.config = config or LoraConfig()

    def run(self, ctx: Any) -> dict[str, Any]:
        from llmos.sdk import ValidationError
        from llmos_models.adapter import is_adapter_model

        from llmos_train.step import inputs, lineage, train_in_context

        cfg = self.config
        model, train_blocks, val_blocks = inputs(ctx, "optimizer.lora")
        base_ref = MODEL_VERSION.get(ctx)
        if not base_ref:
            raise ValidationError(
                "optimizer.lora needs a registered base model (the adapter's parent): put model.register "
                "(after training) or model.load before it"
            )
        if is_adapter_model(model):
            raise ValidationError(
                f"optimizer.lora: the model ({base_ref}) already carries an adapter: merge it first "
                f"(llmos merge {base_ref}) and load the merged version"
            )
        nproc = cfg.nproc or int(getattr(ctx, "nproc", 1) or 1)
        if nproc > 1 and cfg.quantize in ("nf4", "int8"):
            raise ValidationError(
                f"optimizer.lora: quantize = {cfg.quantize!r} trains in one process (the bitsandbytes base is not "
                f"rebuilt in DDP workers): set nproc = 1 for this stage, or quantize = 'none' or 'bf16'"
            )
        if nproc > 1 and cfg.parallel == "fsdp":
            raise ValidationError(
                "optimizer.lora: parallel = 'fsdp' is not supported (the frozen base would be sharded for an adapter "
                "of a few % of it): set parallel = 'ddp' (each process holds the base, only the adapter syncs)"
            )
        if cfg.quantize == "bf16":
            import torch

            model = model.to(torch.bfloat16)  # peft keeps the adapter's matrices in fp32
        elif cfg.quantize != "none":
            model = quantized_base(base_ref, cfg)
        peft_model = attach_lora(model, cfg, base_ref)
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in {id(p): p for p in peft_model.parameters()}.values())
        MODEL.set(ctx, peft_model)
        result = train_in_context(ctx, cfg, peft_model, train_blocks, val_blocks)
        peft_model.eval()
        if result.stopped == "interrupted":
            return {"interrupted_at_step": result.step, "checkpoint": result.checkpoint}
        metrics = {**result.metrics, "params": float(total), "adapter_params": float(trainable)}
        METRICS.set(ctx, metrics)
        lora = {"r": cfg.r, "alpha": cfg.alpha, "dropout": cfg.dropout,
                "target_modules": sorted(peft_model.peft_config["default"].target_modules),
                "quantize": cfg.quantize}
        LINEAGE.set(ctx, lineage(ctx, cfg, result, method="lora", base=base_ref, lora=lora))
        out: dict[str, Any] = dict(metrics)
        if result.stopped:
            out["stopped"] = result.stopped
        return out

    __call__ = run
