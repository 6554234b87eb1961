"""Log-likelihood scoring, shared by llmos's own tasks and lm-eval-harness.

:func:`loglikelihood` is the one scoring function: ``log P(continuation | context)``
of a causal LM, the way lm-eval-harness defines it (context and continuation
tokenized together, the continuation's tokens scored, a leading BOS when the
tokenizer has one). :class:`LlmosLM` wraps it as an ``lm_eval.api.model.LM`` —
registered with lm-eval as the model type ``llmos`` — so lm-eval-harness evaluates
any llmos version::

    import lm_eval
    from llmos_models.harness import LlmosLM

    lm = LlmosLM(ref="quickstart@production")          # or LlmosLM(model=..., tokenizer=...)
    lm_eval.simple_evaluate(model=lm, tasks=["my_task"], task_manager=...)
    # or by name: lm_eval.simple_evaluate(model="llmos", model_args="ref=quickstart:1", ...)

Nothing here is imported by the hook module; lm_eval is imported only by :func:`lm_class`.
"""

from __future__ import annotations

from typing import Any


def _context_ids(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        bos = getattr(tokenizer, "eos_token_id", None)  # lm-eval's convention for an empty context
    return ([int(bos)] if bos is not None else []) + list(ids)


def split_request(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """``(context ids, continuation ids)`` as lm-eval does: the pair encoded whole, the
    continuation is what the context's own encoding does not cover (trailing spaces of
    the context move to the continuation)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = _context_ids(tokenizer, context + continuation)
    ctx = _context_ids(tokenizer, context)
    return whole[: len(ctx)], whole[len(ctx):]


def loglikelihood(model: Any, tokenizer: Any, requests: list[tuple[str, str]], *, batch_size: int = 16,
                  max_length: int | None = None, progress: Any = None) -> list[tuple[float, bool]]:
    """``(log P(continuation | context), continuation is the greedy choice)`` per request."""
    import torch
    import torch.nn.functional as F

    cfg = getattr(model, "config", None)
    limit = max_length or getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = int(pad if pad is not None else (getattr(tokenizer, "eos_token_id", None) or 0))
    encoded = []
    for context, continuation in requests:
        ctx, cont = split_request(tokenizer, context, continuation)
        if not cont:
            raise ValueError(f"empty continuation for context {context[-40:]!r}: nothing to score")
        seq = (ctx + cont)[-(limit + 1):]  # keep the end (lm-eval's left truncation)
        encoded.append((seq, min(len(cont), len(seq) - 1)))
    out: list[tuple[float, bool]] = []
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start:start + batch_size]
                width = max(len(s) for s, _ in chunk) - 1
                x = torch.full((len(chunk), width), pad, dtype=torch.long)
                for i, (seq, _) in enumerate(chunk):
                    x[i, : len(seq) - 1] = torch.tensor(seq[:-1])
                logp = F.log_softmax(model(input_ids=x).logits.float(), dim=-1)
                for i, (seq, n_cont) in enumerate(chunk):
                    end = len(seq) - 1
                    pos = logp[i, end - n_cont:end]
                    target = torch.tensor(seq[-n_cont:])
                    ll = float(pos.gather(1, target[:, None]).sum())
                    out.append((ll, bool((pos.argmax(-1) == target).all())))
                if progress is not None:
                    progress.update(len(chunk))
    finally:
        if was_training:
            model.train()
    return out


def rolling_loglikelihood(model: Any, tokenizer: Any, text: str) -> float:
    """``log P(text)`` in windows of the model's context (lm-eval's loglikelihood_rolling)."""
    import torch
    import torch.nn.functional as F

    cfg = getattr(model, "config", None)
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    ids = _context_ids(tokenizer, text)
    total = 0.0
    with torch.inference_mode():
        for start in range(1, len(ids), limit):
            window = ids[max(0, start - 1): start + limit]
            x = torch.tensor([window[:-1]])
            logp = F.log_softmax(model(input_ids=x).logits.float(), dim=-1)[0]
            total += float(logp.gather(1, torch.tensor(window[1:])[:, None]).sum())
    return total


_LM_CLASS: Any = None


def lm_class() -> Any:
    """The ``lm_eval.api.model.LM`` subclass (defined and registered as ``llmos`` on first use)."""
    global _LM_CLASS
    if _LM_CLASS is not None:
        return _LM_CLASS
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model

    class _LlmosLM(LM):
        """lm-eval-harness's view of an llmos model version (or an in-memory model)."""

        def __init__(self, ref: str | None = None, model: Any = None, tokenizer: Any = None, batch_size: int | str = 16,
                     max_gen_toks: int = 64, **kwargs: Any) -> None:
            super().__init__()
            if model is None:
                if not ref:
                    raise ValueError("LlmosLM needs ref= (a registry reference or model directory) or model=")
                from llmos_models.io import load_ref

                model, tokenizer, _ = load_ref(ref)
            if tokenizer is None:
                raise ValueError("LlmosLM needs the model's tokenizer")
            self.model, self.tokenizer = model.eval(), tokenizer
            self.batch_size = int(batch_size) if str(batch_size).isdigit() else 16
            self.max_gen_toks = int(max_gen_toks)

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            return loglikelihood(self.model, self.tokenizer, [tuple(r.args) for r in requests],
                                 batch_size=self.batch_size)

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            return [rolling_loglikelihood(self.model, self.tokenizer, r.args[0]) for r in requests]

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            from llmos_models.generate import GenerationSettings, generate

            out = []
            for r in requests:
                context, kw = r.args
                stop = kw.get("until") or []
                stop = [stop] if isinstance(stop, str) else list(stop)
                settings = GenerationSettings(max_new_tokens=int(kw.get("max_gen_toks", self.max_gen_toks)),
                                              stop=[s for s in stop if s])
                out.append(generate(self.model, self.tokenizer, context, settings).text)
            return out

    register_model("llmos")(_LlmosLM)
    _LlmosLM.__name__ = _LlmosLM.__qualname__ = "LlmosLM"
    _LM_CLASS = _LlmosLM
    return _LM_CLASS


def __getattr__(name: str) -> Any:  # ``from llmos_models.harness import LlmosLM`` imports lm_eval then
    if name == "LlmosLM":
        return lm_class()
    raise AttributeError(name)
