"""A request body → the engine's :class:`~llmos_serve.engine.Sequence` objects.

Pure: no HTTP, no event loop. Everything a client can get wrong is checked here
and raised as :class:`~llmos_serve.errors.ApiError` (a 4xx), before anything is
queued. The server runs :func:`build_sequences` in a worker thread (tokenizing a
long prompt must not stall the event loop), after :func:`check_sizes` refused,
by byte length alone, prompts that cannot fit the context.
"""

from __future__ import annotations

import functools
import json
import weakref
from dataclasses import dataclass
from typing import Any

from llmos_serve import constrain, grammar
from llmos_serve.engine import SamplingParams, Sequence
from llmos_serve.errors import ApiError

#: most prompts in one /v1/completions request
MAX_PROMPTS = 16

_token_bytes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@dataclass
class Prepared:
    """What a request becomes: its sequences (prompts × ``per_prompt``), prompt tokens,
    echo texts. ``per_prompt`` is ``best_of`` when given, else ``n``."""

    seqs: list[Sequence]
    prompt_tokens: int
    echo_texts: list[str]
    per_prompt: int = 1
    n: int = 1

    def best(self) -> list[Sequence]:
        """The ``n`` sequences of each prompt with the highest log-probability (``best_of``),
        in prompt order; all of them without ``best_of``."""
        if self.per_prompt == self.n:
            return self.seqs
        out: list[Sequence] = []
        for k in range(0, len(self.seqs), self.per_prompt):
            group = self.seqs[k : k + self.per_prompt]
            out += sorted(group, key=lambda s: -sum(s.token_logprobs))[: self.n]
        return out


def check_features(body: Any, *, chat: bool) -> None:
    """Refuse, with a 400 naming the field, what this server does not do."""
    if not chat and body.suffix:
        raise ApiError(400, "suffix (insertion) is not supported by this server; remove the field", param="suffix")
    if chat and body.tools:
        raise ApiError(400, "tools are not supported by this server; remove the field", param="tools")
    response_grammar(body)
    if chat and body.top_logprobs is not None and not body.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    if not chat and body.best_of is not None:
        if body.best_of < body.n:
            raise ApiError(400, f"best_of ({body.best_of}) must be at least n ({body.n})", param="best_of")
        if body.stream and body.best_of > body.n:
            raise ApiError(400, "best_of cannot be used with stream: true", param="best_of")


def response_grammar(body: Any) -> grammar.Grammar | None:
    """The JSON grammar ``body.response_format`` asks for (None for text).

    :raises ApiError: 400 naming what is wrong, e.g. a schema keyword outside the subset.
    """
    fmt = getattr(body, "response_format", None)
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return _grammar("json_object")
    if fmt.json_schema is None:
        raise ApiError(400, "response_format of type json_schema needs a json_schema object "
                       "({'name': ..., 'schema': {...}})", param="response_format.json_schema",
                       code="missing_required_parameter")
    schema = fmt.json_schema.schema_
    if schema is None:
        return _grammar("json_object")
    try:
        return _grammar(json.dumps(schema, sort_keys=True))
    except grammar.UnsupportedSchema as exc:
        raise ApiError(400, f"Invalid schema for response_format {fmt.json_schema.name!r}: {exc}",
                       param="response_format", code="invalid_json_schema") from exc


@functools.lru_cache(maxsize=256)
def _grammar(text: str) -> grammar.Grammar:
    return grammar.json_object() if text == "json_object" else grammar.compile_schema(json.loads(text))


def logit_bias(body: Any, vocab: int) -> dict[int, float]:
    """``logit_bias`` with integer token ids, each checked against the vocabulary."""
    out: dict[int, float] = {}
    for key, value in (body.logit_bias or {}).items():
        if not key.isdigit() or not 0 <= int(key) < vocab:
            raise ApiError(
                400, f"logit_bias keys are token ids in [0, {vocab}) written as strings, got {key[:20]!r}",
                param="logit_bias", code="invalid_value",
            )
        out[int(key)] = float(value)
    return out


def max_bytes_per_token(tok: Any) -> int:
    """An upper bound of the UTF-8 bytes of text one token of ``tok`` stands for.

    The longest token string in the vocabulary, times 4 for normalizers that
    shrink text (NFKC maps a 3-byte full-width letter to one byte). Exact for
    byte-level BPE and byte-fallback tokenizers; a WordPiece ``[UNK]`` can stand
    for a whole unknown word, which this bound does not cover.
    """
    try:
        return _token_bytes[tok]
    except (KeyError, TypeError):
        pass
    try:
        longest = max((len(t.encode("utf-8", "surrogatepass")) for t in tok.get_vocab()), default=16)
    except Exception:  # noqa: BLE001 - a tokenizer without a vocabulary: no byte bound
        longest = 1 << 20
    bound = 4 * max(4, longest)
    try:
        _token_bytes[tok] = bound
    except TypeError:
        pass
    return bound


def _prompt_texts(body: Any, chat: bool) -> list[str]:
    if chat:
        return [m.text() for m in body.messages]
    p = body.prompt
    if isinstance(p, str):
        return [p]
    return [x for x in p if isinstance(x, str)] if isinstance(p, list) else []


def check_sizes(model: Any, body: Any, *, chat: bool) -> None:
    """Refuse, by byte length alone (no tokenizing), prompts that cannot fit the
    model's context; cheap enough for the event loop."""
    texts = _prompt_texts(body, chat)
    if not chat and len(texts) > MAX_PROMPTS:
        raise ApiError(400, f"at most {MAX_PROMPTS} prompts per request", param="prompt")
    ctx = model.context_length
    limit = ctx * max_bytes_per_token(model.tokenizer)
    sizes = [len(t.encode("utf-8")) for t in texts]
    biggest = sum(sizes) if chat else max(sizes, default=0)
    if biggest > limit:
        raise ApiError(
            400,
            f"This model's maximum context length is {ctx} tokens, and your {'messages' if chat else 'prompt'} "
            f"({biggest} bytes) cannot fit in it (at most {limit} bytes). Please reduce the prompt.",
            param="messages" if chat else "prompt", code="context_length_exceeded",
        )


def _tokenize(model: Any, body: Any, chat: bool) -> tuple[list[list[int]], list[str]]:
    tok = model.tokenizer
    vocab = len(tok)
    if chat:
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        try:
            ids = model.chat_prompt_ids(messages)
        except Exception as exc:  # noqa: BLE001 - a template error is the request's fault
            raise ApiError(400, f"could not apply the chat template: {exc}", param="messages") from exc
        return [list(ids)], [""]
    p = body.prompt
    if isinstance(p, str):
        prompts = [tok(p).input_ids]
    elif p and all(isinstance(x, int) for x in p):
        prompts = [list(p)]
    elif p and all(isinstance(x, str) for x in p):
        prompts = [tok(x).input_ids for x in p]
    elif p and all(isinstance(x, list) for x in p):
        prompts = [list(x) for x in p]
    else:
        raise ApiError(400, "prompt must not be empty", param="prompt")
    if len(prompts) > MAX_PROMPTS:
        raise ApiError(400, f"at most {MAX_PROMPTS} prompts per request", param="prompt")
    for ids in prompts:
        if any(not 0 <= t < vocab for t in ids):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
    echo = [tok.decode(ids, skip_special_tokens=True) if body.echo else "" for ids in prompts]
    return prompts, echo


def _default(gen: dict[str, Any], key: str, fallback: float) -> float:
    """The version's recorded generation default for ``key``, else ``fallback``."""
    value = gen.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback


def build_sequences(model: Any, body: Any, *, chat: bool, config: Any) -> Prepared:
    """Tokenize ``body`` for ``model`` (a :class:`~llmos_serve.loader.LoadedModel`)
    and make its sequences; every limit of ``config`` is checked here."""
    check_features(body, chat=chat)
    check_sizes(model, body, chat=chat)
    tok = model.tokenizer
    prompts, echo_texts = _tokenize(model, body, chat)
    fallback = getattr(tok, "bos_token_id", None)
    if fallback is None:
        fallback = getattr(tok, "eos_token_id", None)
    for k, ids in enumerate(prompts):
        if not ids:
            if fallback is None:
                raise ApiError(400, "prompt is empty; send some text", param="prompt")
            prompts[k] = [int(fallback)]
    ctx = model.context_length
    limit = config.max_tokens_limit or ctx
    gen = model.generation
    requested = getattr(body, "max_completion_tokens", None) or body.max_tokens
    longest = max(len(ids) for ids in prompts)
    if requested is None:
        if chat:
            requested = min(limit, max(1, ctx - longest))
        else:
            recorded = gen.get("max_tokens") or gen.get("max_new_tokens")
            requested = int(recorded) if isinstance(recorded, int) and recorded > 0 else config.default_max_tokens
            requested = min(requested, limit)
    if requested > limit:
        raise ApiError(
            400, f"max_tokens is too large: {requested}; this server allows at most {limit}",
            param="max_tokens", code="invalid_value",
        )
    if longest + requested > ctx:
        raise ApiError(
            400,
            f"This model's maximum context length is {ctx} tokens. However, you requested "
            f"{longest + requested} tokens ({longest} in the prompt, {requested} for the completion). "
            f"Please reduce the prompt or max_tokens.",
            param="messages" if chat else "prompt",
            code="context_length_exceeded",
        )
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    stop = [s for s in stop if s]
    # OpenAI's defaults (temperature 1, top_p 1) unless the version records its own
    temperature = body.temperature if body.temperature is not None else _default(gen, "temperature", 1.0)
    top_p = body.top_p if body.top_p is not None else _default(gen, "top_p", 1.0)
    top_k = body.top_k if body.top_k is not None else int(_default(gen, "top_k", 0))
    bias = logit_bias(body, len(tok))
    best_of = getattr(body, "best_of", None) or body.n
    prompt_logprobs = None
    if chat:
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
    else:
        logprobs = body.logprobs if body.logprobs is not None else (0 if best_of > body.n else None)
        if body.echo and body.logprobs is not None:
            prompt_logprobs = body.logprobs
    rules = response_grammar(body)
    # each token's text and the masks are computed once per tokenizer and grammar (cached)
    json_constraint = constrain.constraint(tok, rules) if rules is not None else None
    seqs = []
    for ids in prompts:
        for j in range(best_of):
            seed = None if body.seed is None else (body.seed + j) % (2**63)
            params = SamplingParams(
                max_tokens=requested, temperature=temperature, top_p=top_p,
                top_k=max(0, top_k), seed=seed, stop=stop,
                presence_penalty=body.presence_penalty or 0.0, frequency_penalty=body.frequency_penalty or 0.0,
                logit_bias=bias, logprobs=logprobs, prompt_logprobs=prompt_logprobs,
            )
            processor = json_constraint.start() if json_constraint is not None else None
            seqs.append(Sequence(list(ids), params, processor=processor))
    return Prepared(seqs, sum(len(p) for p in prompts), echo_texts, per_prompt=best_of, n=body.n)
