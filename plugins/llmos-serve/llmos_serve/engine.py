"""The batching engine: one thread per loaded model version.

Requests become :class:`Sequence` objects submitted to an :class:`Engine`. The
engine thread runs *continuous* dynamic batching:

- between two decode steps it admits waiting sequences (up to
  ``max_batch_size`` running at once): their prompts are prefilled together
  with **left padding**, and their KV cache is left-padded to the running
  batch's length and concatenated to it (``transformers.DynamicCache``);
- each decode step is **one forward pass** for every running sequence, with a
  2-D attention mask (zeros over padding) and per-sequence position ids;
- each sequence samples with its own settings (temperature, top-k, top-p) and
  its own seeded ``torch.Generator``, and stops on its own (EOS, stop strings,
  ``max_tokens``, or cancellation — a disconnected client frees its slot at the
  next step), after which its rows are dropped from the cache.

The eager engine's batch tensors (ids, masks, positions, KV cache) live on the model's
device (:attr:`Engine.device`) and sampling runs there; per step only the chosen token
ids (and requested log-probabilities) come back to the CPU.

The waiting queue is bounded: :meth:`Engine.submit` raises :class:`QueueFull`
(the server answers 429 with ``Retry-After``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmos_serve.placement import device_of
from llmos_serve.rows import pad_prompts, text_decoder

log = logging.getLogger("llmos.serve.engine")

_ids = itertools.count(1)


class QueueFull(Exception):
    """The engine's waiting queue is full; retry later."""


class EngineStopped(Exception):
    """The engine no longer accepts work."""


@dataclass
class SamplingParams:
    """Per-sequence generation settings (OpenAI semantics).

    ``temperature == 0`` is greedy; ``top_k <= 0`` and ``top_p >= 1`` disable
    those filters; ``seed`` makes sampling reproducible.
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: added to the logits of these token ids before sampling (OpenAI's ``logit_bias``)
    logit_bias: dict[int, float] = field(default_factory=dict)
    #: record each chosen token's log-probability and this many alternatives (None: off)
    logprobs: int | None = None
    #: record the prompt's log-probabilities with this many alternatives (None: off)
    prompt_logprobs: int | None = None


@dataclass
class Sequence:
    """One generated continuation (a request with ``n=3`` makes three).

    ``sink(event)`` is called from the engine thread with
    ``("delta", text)`` (only when ``stream`` is true) and finally
    ``("finish", self)``; it must be cheap and thread-safe.
    """

    prompt_ids: list[int]
    params: SamplingParams
    sink: Callable[[tuple[str, Any]], None] | None = None
    stream: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    generated: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish_reason: str | None = None
    error: str | None = None
    cancelled: bool = False
    t_submit: float = 0.0
    t_first: float | None = None
    t_last: float | None = None
    t_end: float | None = None
    itl: list[float] = field(default_factory=list, repr=False)
    #: per generated token (when ``params.logprobs`` is set): its log-probability, and the
    #: top ``params.logprobs`` ``(token id, log-probability)`` pairs
    token_logprobs: list[float] = field(default_factory=list, repr=False)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list, repr=False)
    #: with ``params.prompt_logprobs``: per prompt token after the first, its log-probability
    #: given the tokens before it and the top ``(token id, log-probability)`` pairs there
    prompt_logprobs: list[float] = field(default_factory=list, repr=False)
    prompt_top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list, repr=False)
    #: per-sequence logits processor (constrained decoding): ``apply(logits_row)`` edits the
    #: row in place before sampling; ``accept(token) -> bool`` is told the chosen token and
    #: returns True when the sequence is complete (finish_reason ``stop``); a non-None
    #: ``error`` attribute fails the sequence
    processor: Any = field(default=None, repr=False)
    generator: Any = field(default=None, repr=False)

    def cancel(self) -> None:
        """Ask the engine to stop this sequence (takes effect at the next step)."""
        self.cancelled = True

    @property
    def completion_tokens(self) -> int:
        return len(self.generated)


class Engine:
    """Runs one model version; thread-safe :meth:`submit`.

    :param model: a causal LM taking ``input_ids, attention_mask, position_ids,
        past_key_values`` (any ``transformers`` decoder).
    :param tokenizer: its tokenizer (used to detokenize and find stop strings).
    :param max_batch_size: most sequences decoded in one forward pass.
    :param max_queue: most sequences waiting for a slot; more raise :class:`QueueFull`.
    :param observer: optional object with ``on_batch(size)``,
        ``on_token(seq, first: bool, interval_s)``, ``on_finish(seq)``.
    """

    #: the serving engine's name (``--engine``); subclasses set their own
    kind = "eager"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 16,
        max_queue: int = 64,
        eos_token_ids: set[int] | None = None,
        label: str = "model",
        observer: Any = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device_of(model)  # where the batch's tensors live ("cpu", "cuda:0", ...)
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_queue = max(0, int(max_queue))
        self.label = label
        self.observer = observer
        eos = set(eos_token_ids or ())
        if not eos and getattr(tokenizer, "eos_token_id", None) is not None:
            eos.add(int(tokenizer.eos_token_id))
        self.eos_token_ids = eos
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = next(iter(eos)) if eos else 0
        self.pad_id = int(pad)
        self._decode = text_decoder(tokenizer)
        self._cv = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        # batch state (engine thread only)
        self._cache: Any = None
        self._mask: Any = None
        self._pos: Any = None
        self._last: list[int] = []  # each running row's last token (the next step's input)
        # statistics (read by /stats and tests)
        self.batch_sizes: Counter[int] = Counter()
        self.steps = 0
        self.tokens_generated = 0
        self.sequences_finished = 0

    # -- public API -----------------------------------------------------------------

    def start(self) -> Engine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"llmos-engine-{self.label}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop accepting work, cancel what is left, and join the thread."""
        with self._cv:
            self._stopping = True
            for s in list(self._waiting) + list(self._active):
                s.cancel()
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def submit(self, seqs: list[Sequence]) -> None:
        """Queue sequences (all or none).

        :raises QueueFull: not enough room in the waiting queue.
        :raises EngineStopped: the engine is shutting down.
        """
        import torch

        now = time.perf_counter()
        for s in seqs:
            s.t_submit = now
            g = torch.Generator(device=self.device)
            g.manual_seed(s.params.seed if s.params.seed is not None else torch.seed())
            s.generator = g
        with self._cv:
            if self._stopping:
                raise EngineStopped(f"engine {self.label} is stopping")
            if len(self._waiting) + len(seqs) > self.max_queue + max(0, self.max_batch_size - len(self._active)):
                raise QueueFull(f"{len(self._waiting)} requests are waiting (limit {self.max_queue})")
            self._waiting.extend(seqs)
            self._cv.notify_all()

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        return len(self._active)

    def stats(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "engine": self.kind,
            "device": str(self.device),
            "running": self.num_running,
            "waiting": self.num_waiting,
            "steps": self.steps,
            "tokens_generated": self.tokens_generated,
            "sequences_finished": self.sequences_finished,
            "max_batch_size_seen": max(self.batch_sizes) if self.batch_sizes else 0,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
        }

    # -- engine thread --------------------------------------------------------------

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._cv:
                    while not self._waiting and not self._active and not self._stopping:
                        self._cv.wait()
                    if self._stopping:
                        leftover = list(self._waiting) + list(self._active)
                        self._waiting.clear()
                        self._active, self._last = [], []
                        self._clear_batch()
                        for s in leftover:
                            self._finish(s, "cancelled")
                        return
                    new: list[Sequence] = []
                    room = self.max_batch_size - len(self._active)
                    while self._waiting and len(new) < room:
                        s = self._waiting.popleft()
                        if s.cancelled:
                            self._finish(s, "cancelled")
                        else:
                            new.append(s)
                try:
                    self._drop_cancelled()
                    if new:
                        self._prefill(new)
                    if self._active:
                        self._decode_step()
                except Exception as exc:  # noqa: BLE001 - fail the batch, keep serving
                    log.exception("engine %s: batch failed", self.label)
                    failed = self._active + [s for s in new if s.finish_reason is None]
                    self._active, self._last = [], []
                    self._clear_batch()
                    for s in failed:
                        s.error = f"{type(exc).__name__}: {exc}"
                        self._finish(s, "error")

    def _drop_cancelled(self) -> None:
        if any(s.cancelled for s in self._active):
            keep = [i for i, s in enumerate(self._active) if not s.cancelled]
            for s in self._active:
                if s.cancelled:
                    self._finish(s, "cancelled")
            self._select(keep)

    # -- one step: what both engines share (the batch state itself is engine-specific) -------

    def _prefill(self, new: list[Sequence]) -> None:
        """Run the prompts of ``new`` and add them to the running batch (after its rows)."""
        logits = self._prefill_batch(new)
        tokens = self._sample(logits, new)
        self._active = self._active + new
        self._last = self._last + tokens
        self._accept(tokens, offset=len(self._active) - len(new))

    def _decode_step(self) -> None:
        """One forward pass for every running sequence: each gets one token."""
        batch = len(self._active)
        self.batch_sizes[batch] += 1
        self.steps += 1
        if self.observer is not None:
            self.observer.on_batch(batch)
        tokens = self._sample(self._decode_batch(), self._active)
        self._last = tokens
        self._accept(tokens, offset=0)

    def _select(self, keep: list[int]) -> None:
        """Keep the running rows ``keep`` (indices into ``self._active``), in that order."""
        if not keep:
            self._active, self._last = [], []
            self._clear_batch()
            return
        if len(keep) == len(self._active):
            return
        self._active = [self._active[i] for i in keep]
        self._last = [self._last[i] for i in keep]
        self._keep_rows(keep)

    # -- the eager (PyTorch) batch state: a transformers DynamicCache, left-padded --------

    def _clear_batch(self) -> None:
        self._cache, self._mask, self._pos = None, None, None

    def _prefill_batch(self, new: list[Sequence]) -> Any:
        import torch
        from transformers import DynamicCache

        ids_np, mask_np, lens = pad_prompts(new, self.pad_id, left=True)
        ids, mask = torch.from_numpy(ids_np).to(self.device), torch.from_numpy(mask_np).to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=DynamicCache(), use_cache=True
        )
        cache = out.past_key_values
        self._record_prompt_logprobs(out.logits, new, left=True)
        next_pos = torch.tensor(lens, dtype=torch.long, device=self.device)
        if self._active and self._cache is not None:
            self._merge(cache, mask, next_pos)
        else:
            self._cache, self._mask, self._pos = cache, mask, next_pos
        return out.logits[:, -1, :]

    def _merge(self, cache: Any, mask: Any, pos: Any) -> None:
        import torch
        import torch.nn.functional as F

        width = max(self._mask.shape[1], mask.shape[1])

        def pad(c: Any, m: Any) -> Any:
            d = width - m.shape[1]
            if d > 0:
                for layer in c.layers:
                    layer.keys = F.pad(layer.keys, (0, 0, d, 0))
                    layer.values = F.pad(layer.values, (0, 0, d, 0))
                m = F.pad(m, (d, 0))
            return m

        self._mask = torch.cat([pad(self._cache, self._mask), pad(cache, mask)], 0)
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys], 0)
            mine.values = torch.cat([mine.values, theirs.values], 0)
        self._pos = torch.cat([self._pos, pos])

    def _decode_batch(self) -> Any:
        import torch

        batch = len(self._active)
        mask = torch.cat([self._mask, torch.ones((batch, 1), dtype=torch.long, device=self.device)], 1)
        out = self.model(
            input_ids=torch.tensor(self._last, dtype=torch.long, device=self.device)[:, None],
            attention_mask=mask,
            position_ids=self._pos[:, None],
            past_key_values=self._cache,
            use_cache=True,
        )
        self._cache = out.past_key_values
        self._mask = mask
        self._pos = self._pos + 1
        return out.logits[:, -1, :]

    def _keep_rows(self, keep: list[int]) -> None:
        import torch

        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._cache.batch_select_indices(idx)
        self._mask, self._pos = self._mask[idx], self._pos[idx]
        # drop columns that are padding for every remaining row
        used = self._mask.any(0).nonzero()
        start = int(used[0]) if len(used) else 0
        if start > 0:
            self._mask = self._mask[:, start:]
            for layer in self._cache.layers:
                layer.keys = layer.keys[:, :, start:]
                layer.values = layer.values[:, :, start:]

    # -- sampling and stopping (both engines) -------------------------------------------

    def _sample(self, logits: Any, seqs: list[Sequence]) -> list[int]:
        import torch

        logits = logits.float()
        for i, s in enumerate(seqs):
            if s.params.logit_bias:
                ids = torch.tensor(list(s.params.logit_bias), dtype=torch.long, device=logits.device)
                logits[i, ids] += torch.tensor(list(s.params.logit_bias.values()), device=logits.device)
            if s.processor is not None:
                s.processor.apply(logits[i])
        out = torch.argmax(logits, dim=-1)
        for i, s in enumerate(seqs):
            self._choose(logits, out, i, s)
        self._record_logprobs(logits, out, seqs)
        return out.tolist()

    @staticmethod
    def _record_logprobs(logits: Any, out: Any, seqs: list[Sequence]) -> None:
        """Log-probabilities of the model's distribution after ``logit_bias`` (before
        penalties, temperature and top-k/top-p), as OpenAI reports them."""
        import torch

        for i, s in enumerate(seqs):
            k = s.params.logprobs
            if k is None:
                continue
            lp = torch.log_softmax(logits[i], -1)
            s.token_logprobs.append(float(lp[out[i]]))
            if k > 0:
                top = torch.topk(lp, min(k, lp.shape[-1]))
                s.top_logprobs.append(list(zip(top.indices.tolist(), top.values.tolist(), strict=True)))
            else:
                s.top_logprobs.append([])

    @staticmethod
    def _record_prompt_logprobs(logits: Any, seqs: list[Sequence], *, left: bool) -> None:
        """Each prompt token's log-probability given those before it (``logits``: the
        prefill's ``(batch, width, vocab)``, prompts padded on the left or the right), for
        sequences that ask."""
        import torch

        width = logits.shape[1]
        for i, s in enumerate(seqs):
            k = s.params.prompt_logprobs
            if k is None or len(s.prompt_ids) < 2:
                continue
            n = len(s.prompt_ids)
            start = width - n if left else 0
            lp = torch.log_softmax(logits[i, start : start + n - 1].float(), -1)
            target = torch.tensor(s.prompt_ids[1:], device=lp.device)[:, None]
            s.prompt_logprobs = lp.gather(1, target)[:, 0].tolist()
            if k > 0:
                top = torch.topk(lp, min(k, lp.shape[-1]))
                s.prompt_top_logprobs = [list(zip(ix, v, strict=True))
                                         for ix, v in zip(top.indices.tolist(), top.values.tolist(), strict=True)]
            else:
                s.prompt_top_logprobs = [[] for _ in range(n - 1)]

    @staticmethod
    def _choose(logits: Any, out: Any, i: int, s: Sequence) -> None:
        """Pick row ``i``'s token into ``out[i]`` (greedy is already there)."""
        import torch

        p = s.params
        penalized = (p.presence_penalty or p.frequency_penalty) and s.generated
        if penalized:  # OpenAI's penalties over the tokens generated so far
            done = torch.tensor(s.generated, device=logits.device)
            counts = torch.bincount(done, minlength=logits.shape[-1])[: logits.shape[-1]]
            row = logits[i] - p.frequency_penalty * counts - p.presence_penalty * (counts > 0).float()
            if p.temperature <= 1e-5:
                out[i] = torch.argmax(row)
                return
        elif p.temperature <= 1e-5:
            return
        else:
            row = logits[i]
        row = row / p.temperature
        if p.top_k and 0 < p.top_k < row.shape[-1]:
            kth = torch.topk(row, p.top_k).values[-1]
            row = row.masked_fill(row < kth, float("-inf"))
        if p.top_p < 1.0:
            srt, idx = torch.sort(row, descending=True)
            probs = torch.softmax(srt, -1)
            drop = (torch.cumsum(probs, -1) - probs) > p.top_p
            srt = srt.masked_fill(drop, float("-inf"))
            row = torch.full_like(row, float("-inf")).scatter(0, idx, srt)
        probs = torch.softmax(row, -1)
        out[i] = torch.multinomial(probs, 1, generator=s.generator)[0]

    def _accept(self, tokens: list[int], offset: int) -> None:
        """Record one new token for ``self._active[offset:]`` and retire finished ones."""
        now = time.perf_counter()
        finished: list[int] = []
        for j, tok in enumerate(tokens):
            i = offset + j
            s = self._active[i]
            first = s.t_first is None
            interval = now - (s.t_submit if first else s.t_last)  # type: ignore[operator]
            if first:
                s.t_first = now
            else:
                s.itl.append(interval)
            s.t_last = now
            self.tokens_generated += 1
            if self.observer is not None:
                self.observer.on_token(s, first, interval)
            reason = self._advance(s, tok)
            if reason is not None:
                self._finish(s, reason)
                finished.append(i)
        if finished:
            gone = set(finished)
            self._select([i for i in range(len(self._active)) if i not in gone])

    def _advance(self, s: Sequence, tok: int) -> str | None:
        done = False
        if s.processor is not None:
            done = s.processor.error is None and s.processor.accept(tok)
            if s.processor.error is not None:
                s.generated.append(tok)
                s.error = s.processor.error
                return "error"
        if tok in self.eos_token_ids:
            s.generated.append(tok)
            return "stop"
        s.generated.append(tok)
        text = self._decode([t for t in s.generated if t not in self.eos_token_ids])
        reason = None
        if s.params.stop:
            cut = min((k for k in (text.find(st) for st in s.params.stop if st) if k >= 0), default=-1)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        if reason is None and done:
            reason = "stop"
        if reason is None and len(s.generated) >= s.params.max_tokens:
            reason = "length"
        s.text = text
        if s.stream and reason is None:
            safe = len(text)
            while safe > s.emitted and text[safe - 1] == "\ufffd":  # an incomplete UTF-8 character
                safe -= 1
            for st in s.params.stop:  # hold back what may be the start of a stop string
                for k in range(min(len(st) - 1, safe - s.emitted), 0, -1):
                    if text[safe - k : safe] == st[:k]:
                        safe -= k
                        break
            if safe > s.emitted:
                delta, s.emitted = text[s.emitted : safe], safe
                self._emit(s, ("delta", delta))
        return reason

    def _finish(self, s: Sequence, reason: str) -> None:
        if s.finish_reason is not None:
            return
        s.finish_reason = reason
        s.t_end = time.perf_counter()
        self.sequences_finished += 1
        if s.stream and len(s.text) > s.emitted and reason not in ("cancelled", "error"):
            delta, s.emitted = s.text[s.emitted :], len(s.text)
            self._emit(s, ("delta", delta))
        if self.observer is not None:
            try:
                self.observer.on_finish(s)
            except Exception:  # noqa: BLE001
                log.exception("observer failed")
        self._emit(s, ("finish", s))

    @staticmethod
    def _emit(s: Sequence, event: tuple[str, Any]) -> None:
        if s.sink is not None:
            try:
                s.sink(event)
            except Exception:  # noqa: BLE001 - a closed event loop must not kill the engine
                log.debug("sink of sequence %s failed", s.id, exc_info=True)

