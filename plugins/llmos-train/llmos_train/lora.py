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

This module imports only pydantic at import time (the hook reads its config).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from llmos_train.config import TrainConfig
from llmos.sdk import LINEAGE, METRICS, MODEL, MODEL_VERSION

#: LoRA targets when ``target_modules`` is not given, by ``config.model_type``
DEFAULT_TARGETS = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}


class LoraConfig(TrainConfig):
    """LoRA settings, plus every setting of ``optimizer.train`` (lr, max_steps, ...)."""

    r: int = Field(8, ge=1, description="Rank of the update matrices.")
    alpha: float = Field(16.0, gt=0, description="Scale of the update (alpha / r multiplies B·A).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: list[str] | None = Field(
        None,
        description="Names of the Linear layers that get an adapter (e.g. ['q_proj', 'v_proj']); default: the "
        "attention query and value projections (llama) or c_attn (gpt2).",
    )
    quantize: Literal["none", "bf16", "nf4", "int8"] = Field(
        "none",
        description="Reduced-precision frozen base: bf16 (fast on CPUs with bf16 instructions and on GPUs), or "
        "QLoRA-style nf4/int8 through bitsandbytes (CUDA only). The adapter itself stays fp32.",
    )
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (LoRA takes larger ones than full fine-tuning).")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay on the adapter's matrices.")

    @field_validator("quantize")
    @classmethod
    def _quantize(cls, v: str, info: ValidationInfo) -> str:
        """nf4/int8 are refused when the pipeline is read (before any stage runs) where they cannot run."""
        if v not in ("nf4", "int8"):
            return v
        device = str(info.data.get("device", "auto"))
        if device == "auto" or device.startswith("cuda"):
            import torch  # only for a quantized base: reading a plain config stays torch-free

            has_cuda = torch.cuda.is_available()
        else:
            has_cuda = False
        if not has_cuda:
            where = "this machine has none" if device == "auto" or device.startswith("cuda") else \
                f"device = {device!r}"
            raise ValueError(
                f"quantize = {v!r} (a QLoRA-style base through bitsandbytes) needs a CUDA GPU, and {where}: set "
                f"quantize = 'none' (LoRA on the fp32 base) or 'bf16' (a bf16 frozen base), or run on a CUDA machine"
            )
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError(f"quantize = {v!r} needs bitsandbytes, which is not installed: pip install bitsandbytes "
                             f"(or set quantize = 'none' or 'bf16')")
        return v

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not t.strip() for t in v)):
            raise ValueError("target_modules must be a non-empty list of module names, e.g. ['q_proj', 'v_proj']")
        return v


def _linear_names(model: Any) -> list[str]:
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"})


def _targets(model: Any, cfg: LoraConfig) -> list[str]:
    from llmos.sdk import ValidationError

    names = _linear_names(model)
    if cfg.target_modules is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        targets = DEFAULT_TARGETS.get(str(model_type))
        if targets is None:
            raise ValidationError(
                f"optimizer.lora: no default target modules for model type {model_type!r}: set target_modules "
                f"to some of its layers: {', '.join(names)}"
            )
        return targets
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise ValidationError(
            f"optimizer.lora: target_modules {', '.join(missing)} not in the model; its layers are: {', '.join(names)}"
        )
    return list(cfg.target_modules)


def _quantized_base(base_ref: str, cfg: LoraConfig) -> Any:
    """The base reloaded quantized by bitsandbytes (CUDA only), ready for k-bit training."""
    import torch

    from llmos.sdk import ValidationError

    if not torch.cuda.is_available():
        raise ValidationError(
            f"optimizer.lora: quantize = {cfg.quantize!r} needs a CUDA GPU (bitsandbytes' kernels); this machine "
            f"has none: set quantize = 'none' (plain LoRA on the fp32 base)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValidationError(
            f"optimizer.lora: quantize = {cfg.quantize!r} needs bitsandbytes: pip install bitsandbytes"
        ) from None
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from llmos_models.io import resolve_model_path

    path, _ = resolve_model_path(base_ref)
    if cfg.quantize == "nf4":
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    else:
        q = BitsAndBytesConfig(load_in_8bit=True)
    from llmos.sdk import resolve_device

    device = resolve_device(cfg.device)
    gpu = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    # placed on its GPU by the quantizer: the loop does not move it (bitsandbytes models refuse .to())
    model = AutoModelForCausalLM.from_pretrained(str(path), quantization_config=q, device_map={"": gpu},
                                                 use_safetensors=True)
    return prepare_model_for_kbit_training(model)


def attach_lora(model: Any, cfg: LoraConfig, base_ref: str | None) -> Any:
    """``model`` with fresh LoRA matrices on ``cfg``'s target modules (a ``peft.PeftModel``);
    only those are trainable. The base's weights are frozen, not copied."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = _targets(model, cfg)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                              bias="none", task_type="CAUSAL_LM",
                              fan_in_fan_out=getattr(getattr(model, "config", None), "model_type", "") == "gpt2")
    import warnings

    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5 (noise, not ours)
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(model, peft_cfg)
    peft_model.llmos_base = base_ref  # what the registered adapter names as its base
    return peft_model


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
            model = _quantized_base(base_ref, cfg)
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
