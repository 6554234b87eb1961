"""``optimizer.train``: the pipeline step around :func:`llmos_train.loop.train`."""

from __future__ import annotations

from typing import Any

from llmos.sdk import DATASET, LINEAGE, METRICS, MODEL, MODEL_VERSION, TOKENIZER, LlmosError, ValidationError
from llmos_train.config import TrainConfig
from llmos_train.loop import TrainIO, TrainResult


class ContextIO(TrainIO):
    """Connects the loop to a :class:`llmos.context.RunContext`: metrics go to the
    run (buffered by the runner), progress to the live display, Ctrl-C to ``should_stop``."""

    def __init__(self, ctx: Any, progress: Any) -> None:
        self.ctx, self._progress = ctx, progress
        self.checkpoint_dir = ctx.checkpoint_dir()
        self.resume = bool(ctx.resume)

    def log_train(self, step: int, metrics: dict[str, float]) -> None:
        self.ctx.log_metrics(step, metrics, kind="train")

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.ctx.log_metrics(step, metrics, kind="eval")

    def progress(self, advance: int, **fields: Any) -> None:
        self._progress.update(advance, **fields)

    def should_stop(self) -> bool:
        return self.ctx.should_stop


def inputs(ctx: Any, who: str) -> tuple[Any, Any, Any]:
    """``(model, train blocks, validation blocks)`` from the context, or a clear error."""
    model = MODEL.get(ctx)
    dataset = DATASET.get(ctx)
    if model is None:
        raise ValidationError(f"{who} needs a model: put a model stage (e.g. model.llama) before it")
    if dataset is None:
        raise ValidationError(f"{who} needs a dataset: put a data stage (e.g. data.corpus) before it")
    check_tokenizer(ctx, who, model, dataset)
    train_blocks = dataset.split("train")
    try:
        val_blocks = dataset.split("validation")
    except (KeyError, ValueError, FileNotFoundError, LlmosError):
        val_blocks = train_blocks[:0]
    return model, train_blocks, val_blocks


def check_tokenizer(ctx: Any, who: str, model: Any, dataset: Any) -> None:
    """Before training: the dataset's token ids must mean what the model was trained on.

    Refuses a vocabulary larger than the model's embedding, special-token ids that differ
    from the model's, and — for a loaded model (``model.load``) — a dataset tokenized by
    another tokenizer than the model's (what fine-tuning after a fresh ``data.corpus`` did).
    """
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    fix = ("put model.load before data.corpus (the corpus then tokenizes with the model's tokenizer), or set "
           "data.corpus tokenizer to the model's directory")
    if isinstance(vocab, int) and getattr(dataset, "vocab_size", 0) > vocab:
        raise ValidationError(f"{who}: the dataset's vocabulary ({dataset.vocab_size} tokens) is larger than the "
                              f"model's ({vocab}): {fix}")
    special = dict(getattr(dataset, "special_tokens", {}) or {})
    for name in ("bos", "eos", "pad"):
        want = getattr(config, f"{name}_token_id", None)
        if isinstance(want, int) and name in special and special[name] != want:
            raise ValidationError(f"{who}: the dataset's {name} token is id {special[name]}, the model's is {want}: "
                                  f"{fix}")
    model_tok = TOKENIZER.get(ctx)
    if MODEL_VERSION.get(ctx) is None or model_tok is None or not hasattr(dataset, "tokenizer"):
        return
    data_tok = dataset.tokenizer()
    if data_tok is model_tok:
        return
    mine, theirs = model_tok.get_vocab(), data_tok.get_vocab()
    if mine != theirs:
        differ = sum(1 for t, i in theirs.items() if mine.get(t) != i)
        raise ValidationError(
            f"{who}: the dataset was tokenized with another tokenizer than the loaded model "
            f"{MODEL_VERSION.get(ctx)}'s ({differ} of {len(theirs)} tokens differ): {fix}"
        )


def train_in_context(ctx: Any, cfg: TrainConfig, model: Any, train_blocks: Any, val_blocks: Any) -> TrainResult:
    """Run the loop for ``ctx`` (in this process, or in DDP workers when nproc > 1)."""
    seed = cfg.seed if cfg.seed is not None else int(ctx.seed)
    nproc = cfg.nproc or int(getattr(ctx, "nproc", 1) or 1)
    if len(train_blocks) < cfg.batch_size:
        raise ValidationError(
            f"the training split has {len(train_blocks)} blocks, fewer than batch_size={cfg.batch_size}: "
            f"lower batch_size or block_size, or use a larger corpus"
        )
    if cfg.batch_size % nproc:
        raise ValidationError(f"batch_size={cfg.batch_size} must be divisible by the {nproc} DDP processes (nproc)")
    with ctx.progress(cfg.max_steps, "train", unit="step") as progress:
        io = ContextIO(ctx, progress)
        if nproc > 1:
            from llmos_train.ddp import launch

            return launch(ctx, io, cfg, model, train_blocks, val_blocks, seed=seed, nproc=nproc)
        from llmos_train.loop import train

        return train(model, train_blocks, val_blocks, cfg, io, seed=seed)


def lineage(ctx: Any, cfg: TrainConfig, result: TrainResult, **extra: Any) -> dict[str, Any]:
    dataset = DATASET.get(ctx)
    data = {k: getattr(dataset, k) for k in ("corpus_sha256", "vocab_size", "block_size") if hasattr(dataset, k)}
    if getattr(dataset, "path", None) is not None:  # the dataset directory (llmos.artifacts.LineageData)
        data["path"] = str(dataset.path)
    return {"method": "train", "settings": cfg.model_dump(mode="json"), "data": data, "steps": result.step, **extra}


class TrainStep:
    """Train ``ctx.artifacts["model"]`` on ``ctx.artifacts["dataset"]``.

    Writes ``ctx.artifacts["metrics"]`` (val_loss, val_ppl, steps, params) and
    ``ctx.artifacts["lineage"]``; checkpoints go to ``ctx.checkpoint_dir()``; a
    resumed run continues from the latest checkpoint with the same batches.
    """

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()

    def run(self, ctx: Any) -> dict[str, Any]:
        cfg = self.config
        model, train_blocks, val_blocks = inputs(ctx, "optimizer.train")
        result = train_in_context(ctx, cfg, model, train_blocks, val_blocks)
        model.eval()
        block = int(train_blocks.shape[1]) if getattr(train_blocks, "ndim", 0) == 2 else 0
        # generation warns past the longest context the model was trained on (llmos.json train_context)
        model.llmos_train_context = max(int(getattr(model, "llmos_train_context", 0) or 0), block)
        params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        metrics = {**result.metrics, "params": float(params)}
        if result.stopped == "interrupted":
            return {"interrupted_at_step": result.step, "checkpoint": result.checkpoint}
        METRICS.set(ctx, metrics)
        LINEAGE.set(ctx, lineage(ctx, cfg, result))
        out: dict[str, Any] = dict(metrics)
        if result.stopped:
            out["stopped"] = result.stopped
        return out

    __call__ = run
