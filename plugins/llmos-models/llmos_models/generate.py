"""Text generation on top of ``transformers``' ``model.generate``.

:class:`GenerationSettings` is the one description of a decoding strategy, shared by
``llmos generate``, ``model.evaluate``'s samples and the server:

- greedy: ``temperature=0`` (the default) and ``num_beams=1``;
- beam search: ``num_beams>1`` (deterministic, not streamed token by token);
- sampling: ``temperature>0`` with optional ``top_k``, ``top_p``, ``typical_p``;
- ``repetition_penalty``, ``stop`` strings (the text is cut before the first one),
  ``seed`` (same seed, same text), ``max_new_tokens``.

:func:`generate` returns the whole completion; :func:`stream` yields text pieces as they
are produced (``TextIteratorStreamer`` on a background thread), holding back text that
could be the beginning of a stop string.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GenerationSettings(BaseModel):
    """How to decode. ``temperature=0`` means greedy."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(64, ge=1, le=100_000, description="Most tokens to generate.")
    temperature: float = Field(0.0, ge=0.0, le=100.0, description="0 = greedy; >0 samples (higher = more random).")
    top_k: int | None = Field(None, ge=1, description="Sample only among the k most likely tokens.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling: smallest set with this probability.")
    typical_p: float | None = Field(None, gt=0.0, le=1.0, description="Locally typical sampling mass.")
    repetition_penalty: float = Field(1.0, gt=0.0, description="> 1 discourages repeating tokens (1 = off).")
    num_beams: int = Field(1, ge=1, le=64, description="Beam search width (1 = no beam search).")
    stop: list[str] = Field(default_factory=list, description="Stop before the first of these strings.")
    seed: int | None = Field(None, description="Random seed for sampling (same seed, same text).")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def generate_kwargs(self, tokenizer: Any) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (a complete GenerationConfig, so a
        model's own ``generation_config`` never changes the meaning of these settings)."""
        from transformers import GenerationConfig

        eos = getattr(tokenizer, "eos_token_id", None)
        pad = getattr(tokenizer, "pad_token_id", None)
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
            "eos_token_id": eos,
            "pad_token_id": pad if pad is not None else eos,
        }
        if self.do_sample:
            kw["temperature"] = self.temperature
            kw["top_k"] = self.top_k if self.top_k is not None else 0
            kw["top_p"] = self.top_p if self.top_p is not None else 1.0
            if self.typical_p is not None:
                kw["typical_p"] = self.typical_p
        if self.num_beams > 1:
            kw["early_stopping"] = True
        extra: dict[str, Any] = {"generation_config": GenerationConfig(**kw)}
        if self.stop:
            extra["stop_strings"] = list(self.stop)
            extra["tokenizer"] = tokenizer
        return extra


@dataclass
class Completion:
    """What :func:`generate` returns."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (eos or a stop string) or "length"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
        }


class PositionWarning(UserWarning):
    """Generation goes past the longest context the model was trained on."""


def _warn_past_training_context(model: Any, positions: int) -> None:
    """Warn (once per model) when ``positions`` exceed the model's training context
    (``llmos.json`` ``train_context``): positions it never saw, text of unknown quality."""
    trained = getattr(model, "llmos_train_context", None)
    if not trained or positions <= trained or getattr(model, "_llmos_warned_context", False):
        return
    import warnings

    model._llmos_warned_context = True
    warnings.warn(
        f"generating up to position {positions}, past the {trained} tokens this model was trained on: the text "
        f"after position {trained} is out of distribution (use a shorter prompt or max_new_tokens, or train on "
        f"longer blocks)",
        PositionWarning,
        stacklevel=3,
    )


def _inputs(model: Any, tokenizer: Any, prompt: str) -> Any:
    """The prompt's token ids, encoded as training encoded documents (with the tokenizer's
    special-token template: ``<bos>`` first for the tokenizers data.corpus trains), on the
    model's device."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=True)["input_ids"]
    if ids.shape[1] == 0:  # an empty prompt starts from the beginning-of-sequence token
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ids = torch.tensor([[start]], dtype=torch.long)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or getattr(
        getattr(model, "config", None), "n_positions", None)
    if limit is not None and ids.shape[1] >= limit:
        from llmos.sdk import ValidationError

        raise ValidationError(f"the prompt has {ids.shape[1]} tokens; this model accepts fewer than {limit}")
    device = getattr(model, "device", None)
    return ids.to(device) if device is not None else ids


def _fit(model: Any, ids: Any, settings: GenerationSettings) -> GenerationSettings:
    """Models with learned absolute positions (GPT-2: ``n_positions``) cannot go past
    their last position: generate at most up to it (the finish reason is "length")."""
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    if limit is not None and ids.shape[1] + settings.max_new_tokens > limit:
        return settings.model_copy(update={"max_new_tokens": max(1, limit - ids.shape[1])})
    return settings


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generate(model: Any, tokenizer: Any, prompt: str, settings: GenerationSettings | None = None) -> Completion:
    """Generate a completion of ``prompt`` (the prompt is not included in the text)."""
    import torch

    settings = settings or GenerationSettings()
    ids = _inputs(model, tokenizer, prompt)
    settings = _fit(model, ids, settings)
    _warn_past_training_context(model, int(ids.shape[1]) + settings.max_new_tokens)
    model.eval()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **settings.generate_kwargs(tokenizer))
    new = out[0, ids.shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    hit_eos = eos is not None and eos in new
    if hit_eos:
        new = new[: new.index(eos)]
    text = tokenizer.decode(new, skip_special_tokens=True)
    text, hit_stop = _cut_at_stop(text, settings.stop)
    finish = "stop" if hit_eos or hit_stop or len(new) < settings.max_new_tokens else "length"
    return Completion(text, int(ids.shape[1]), len(new), finish)


def stream(model: Any, tokenizer: Any, prompt: str, settings: GenerationSettings | None = None) -> Iterator[str]:
    """Yield the completion of ``prompt`` in pieces as tokens are generated.

    Beam search cannot stream (the best beam is known only at the end): with
    ``num_beams > 1`` the whole text is yielded once. Closing the generator early
    (``break``, a client that went away) stops generation at the next token.
    """
    settings = settings or GenerationSettings()
    if settings.num_beams > 1:
        text = generate(model, tokenizer, prompt, settings).text
        if text:
            yield text
        return
    import threading

    import torch
    from transformers import TextIteratorStreamer

    from transformers import StoppingCriteria, StoppingCriteriaList

    ids = _inputs(model, tokenizer, prompt)
    settings = _fit(model, ids, settings)
    _warn_past_training_context(model, int(ids.shape[1]) + settings.max_new_tokens)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    errors: list[BaseException] = []
    cancel = threading.Event()

    class _Cancelled(StoppingCriteria):
        """Stops generation once the consumer has what it needs (a stop string) or went away."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

    model.eval()

    def work() -> None:
        try:
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                if settings.seed is not None:
                    torch.manual_seed(settings.seed)
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                               **settings.generate_kwargs(tokenizer))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, name="llmos-generate", daemon=True)
    thread.start()
    hold = max((len(s) for s in settings.stop), default=0)
    pending = ""
    stopped = False
    drained = False
    try:
        for piece in streamer:
            if stopped:
                continue  # drain so the worker can finish
            pending += piece
            text, hit = _cut_at_stop(pending, settings.stop)
            if hit:
                stopped = True
                cancel.set()
                pending = ""
                if text:
                    yield text
                continue
            # emit all but a tail that could be the start of a stop string
            safe = len(pending) - (hold - 1) if hold else len(pending)
            if safe > 0:
                yield pending[:safe]
                pending = pending[safe:]
        drained = True
        if pending and not stopped:
            yield pending
    finally:
        cancel.set()  # the consumer stopped early (or we are done): end generation at the next token
        if not drained:
            for _ in streamer:  # wait for the worker's end-of-stream signal
                pass
        thread.join()
    if errors:
        raise errors[0]


def generate_batch(model: Any, tokenizer: Any, prompts: list[str], settings: GenerationSettings | None = None, *,
                   batch_size: int = 16, progress: Any = None) -> list[Completion]:
    """Greedy (or seeded sampled) completions of many prompts, ``batch_size`` at a time:
    prompts are left-padded (the attention mask hides the padding, positions follow it),
    each completion is cut at end-of-sequence and at the first stop string, as
    :func:`generate` does for one. A prompt longer than the model's context keeps its
    end (``max_new_tokens`` positions left free). ``progress.update(n)`` after each batch."""
    import torch

    settings = settings or GenerationSettings()
    if settings.num_beams > 1:
        raise ValueError("generate_batch decodes greedily or by sampling; use generate() for beam search")
    cfg = getattr(model, "config", None)
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    device = getattr(model, "device", None)
    eos = tokenizer.eos_token_id
    out: list[Completion] = []
    model.eval()
    for first in range(0, len(prompts), batch_size):
        chunk = prompts[first:first + batch_size]
        rows = [tokenizer(p, add_special_tokens=True)["input_ids"] or [start] for p in chunk]
        step = settings
        if limit is not None:
            keep = max(1, limit - settings.max_new_tokens)
            rows = [r[-keep:] for r in rows]
            room = limit - max(len(r) for r in rows)
            if room < settings.max_new_tokens:
                step = settings.model_copy(update={"max_new_tokens": max(1, room)})
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), int(pad if pad is not None else 0), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        if device is not None:
            ids, mask = ids.to(device), mask.to(device)
        _warn_past_training_context(model, width + step.max_new_tokens)
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            if step.seed is not None:
                torch.manual_seed(step.seed)
            gen = model.generate(input_ids=ids, attention_mask=mask, **step.generate_kwargs(tokenizer))
        for i, r in enumerate(rows):
            new = gen[i, width:].tolist()
            hit_eos = eos is not None and eos in new
            if hit_eos:
                new = new[: new.index(eos)]
            text, hit_stop = _cut_at_stop(tokenizer.decode(new, skip_special_tokens=True), step.stop)
            finish = "stop" if hit_eos or hit_stop or len(new) < step.max_new_tokens else "length"
            out.append(Completion(text, len(r), len(new), finish))
        if progress is not None:
            progress.update(len(chunk))
    return out
