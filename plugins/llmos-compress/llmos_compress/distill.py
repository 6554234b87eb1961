"""Knowledge distillation as a pipeline stage.

The student (``ctx.artifacts["model"]``, e.g. built by ``model.llama`` with a smaller
preset) learns from the teacher (``ctx.artifacts["teacher"]``, loaded by ``model.load``
with ``as = "teacher"``, or the registry reference in ``teacher``) on the training
split, with the loss of Hinton et al. (2015)::

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, next token)

When the run has no student, one is made from the teacher by keeping every other
decoder layer (``student_layers`` to choose how many), which starts it far closer to
the teacher than a random initialisation.
"""

from __future__ import annotations

import copy
from typing import Any

from llmos.sdk import DATASET, LINEAGE, METRICS, MODEL, TEACHER, TEACHER_VERSION, ValidationError


def distill_loss(student_logits: Any, teacher_logits: Any, targets: Any, alpha: float, temperature: float) -> Any:
    """``alpha·T²·KL(p_t || p_s) + (1−alpha)·CE`` over all positions (logits ``(B, L, V)``,
    targets ``(B, L)``)."""
    import torch.nn.functional as F

    v = student_logits.size(-1)
    s = student_logits.reshape(-1, v).float()
    t = teacher_logits.reshape(-1, v).float()
    loss = 0.0
    if alpha > 0:
        kl = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                      log_target=True, reduction="batchmean")
        loss = alpha * temperature**2 * kl
    if alpha < 1:
        loss = loss + (1 - alpha) * F.cross_entropy(s, targets.reshape(-1))
    return loss


def shrink_from_teacher(teacher: Any, layers: int | None = None) -> Any:
    """A student with ``layers`` decoder layers (default half) copied from evenly spaced
    teacher layers (first and last kept)."""
    import torch

    from llmos_compress.int8 import is_quantized

    if is_quantized(teacher):
        raise ValidationError("cannot build a student from an int8 teacher: use its fp32 parent or give a student")
    inner = getattr(teacher, "model", None)
    blocks = getattr(inner, "layers", None)
    if blocks is None:
        raise ValidationError(
            "building a student from this teacher needs a Llama-style model (model.layers): "
            "build the student with model.llama before compression.distill"
        )
    n = len(blocks)
    k = layers or max(1, n // 2)
    if k >= n:
        raise ValidationError(f"student_layers = {k} is not fewer than the teacher's {n} layers: lower it")
    idx = sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n - 1]
    student = copy.deepcopy(teacher)
    student.model.layers = torch.nn.ModuleList([student.model.layers[i] for i in idx])
    for new_i, layer in enumerate(student.model.layers):
        if hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = new_i
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_i
    cfg = student.config
    cfg.num_hidden_layers = len(idx)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = [cfg.layer_types[i] for i in idx]
    for attr in ("llmos_saver", "llmos_loader", "llmos_compression"):
        if hasattr(student, attr):
            delattr(student, attr)
    return student


class DistillStep:
    """``compression.distill``: train ``ctx.artifacts["model"]`` from the teacher."""

    def __init__(self, config: Any = None) -> None:
        from llmos_compress.config import DistillConfig

        self.config = config if config is not None else DistillConfig()

    def needs_dataset(self) -> bool:
        return True

    def _teacher(self, ctx: Any) -> tuple[Any, str | None]:
        cfg = self.config
        if cfg.teacher:
            from llmos_models.io import load_ref

            teacher, _tok, ref = load_ref(cfg.teacher)
            return teacher, ref or cfg.teacher
        teacher = TEACHER.get(ctx)
        if teacher is None:
            raise ValidationError(
                "compression.distill needs a teacher: add a model.load stage with as = 'teacher', "
                "or set teacher = 'name:N'"
            )
        return teacher, TEACHER_VERSION.get(ctx)

    def run(self, ctx: Any) -> dict[str, float]:
        import torch

        from llmos_compress.int8 import is_quantized
        from llmos_compress.measure import count_parameters, fit, perplexity

        cfg = self.config
        ds = DATASET.get(ctx)
        if ds is None:
            raise ValidationError(
                "compression.distill needs training data: put a data stage (e.g. data.corpus) before it, or pass --data"
            )
        teacher, teacher_ref = self._teacher(ctx)
        student = MODEL.get(ctx)
        if student is None or student is teacher:
            student = shrink_from_teacher(teacher, cfg.student_layers)
        if is_quantized(student):
            raise ValidationError("the student is int8-quantized and cannot be trained: distill into an fp32 model")
        tv = int(teacher.config.vocab_size)
        sv = int(student.config.vocab_size)
        if tv != sv:
            raise ValidationError(
                f"teacher and student vocabularies differ ({tv} vs {sv} tokens): build the student for the "
                f"teacher's tokenizer"
            )
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        alpha, temp = cfg.alpha, cfg.temperature

        def loss_fn(model: Any, x: Any) -> Any:
            with torch.no_grad():
                t_logits = teacher(input_ids=x).logits[:, :-1]
            s_logits = model(input_ids=x).logits[:, :-1]
            return distill_loss(s_logits, t_logits, x[:, 1:], alpha, temp)

        seed = cfg.seed if cfg.seed is not None else int(getattr(ctx, "seed", 0))
        with ctx.progress(cfg.steps, "distillation", unit="step") as bar:
            res = fit(student, ds.split("train"), steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed,
                      warmup_steps=cfg.warmup_steps, loss_fn=loss_fn, progress=bar,
                      should_stop=lambda: getattr(ctx, "should_stop", False),
                      log=lambda s, m: ctx.log_metrics(s, m, kind="train"))
        val = ds.split("validation")
        n = cfg.eval_batches * cfg.batch_size
        s_eval = perplexity(student, val, batch_size=cfg.batch_size, max_blocks=n)
        t_eval = perplexity(teacher, val, batch_size=cfg.batch_size, max_blocks=n)
        sp, tp = count_parameters(student), count_parameters(teacher)
        metrics = {
            "distill_loss": res["loss"],
            "val_loss": s_eval["val_loss"],
            "val_ppl": s_eval["val_ppl"],
            "teacher_val_ppl": t_eval["val_ppl"],
            "ppl_ratio_vs_teacher": s_eval["val_ppl"] / t_eval["val_ppl"],
            "params": float(sp),
            "teacher_params": float(tp),
            "params_ratio_vs_teacher": sp / tp,
        }
        ctx.log_metrics(None, {k: metrics[k] for k in ("val_loss", "val_ppl", "teacher_val_ppl")}, kind="eval")
        student.eval()
        MODEL.set(ctx, student)
        settings = cfg.model_dump(mode="json")
        settings["teacher"] = teacher_ref
        LINEAGE.set(ctx, {"method": "distill", "settings": settings})
        METRICS.set(ctx, dict(metrics))
        return metrics

    __call__ = run
