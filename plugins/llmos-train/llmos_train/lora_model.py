"""``optimizer.lora``'s config and the peft model it trains: :class:`LoraConfig`,
:func:`attach_lora` (a base wrapped in a LoRA peft model, only the adapter trainable)
and :func:`quantized_base` (a bitsandbytes base). Used by the pipeline step
(:mod:`llmos_train.lora`) and by each DDP worker (:mod:`llmos_train.ddp`), which rebuilds
the same peft model. Imports only pydantic at import time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from llmos_train.config import TrainConfig

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


def quantized_base(base_ref: str, cfg: LoraConfig) -> Any:
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
