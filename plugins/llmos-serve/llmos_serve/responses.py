"""Response bodies and stream chunks of the OpenAI API, from finished sequences (pure)."""

from __future__ import annotations

import json
import time
from typing import Any

from llmos_serve.engine import Sequence


def usage(seqs: list[Sequence], n: int) -> dict[str, int]:
    prompt = sum(len(s.prompt_ids) for s in seqs[::n])
    completion = sum(s.completion_tokens for s in seqs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def record(info: dict[str, Any], seqs: list[Sequence], n: int) -> dict[str, int]:
    """Put the request's token counts and time to first token in ``info`` (access log, hooks)."""
    u = usage(seqs, n)
    info["completion_tokens"] = u["completion_tokens"]
    if seqs and seqs[0].t_first is not None:
        info["time_to_first_token_s"] = round(seqs[0].t_first - seqs[0].t_submit, 6)
    return u


def _token(tok: Any, tid: int) -> tuple[str, list[int]]:
    text = tok.decode([tid])
    return text, list(text.encode("utf-8"))


def _content(s: Sequence, tok: Any) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """``(token id, logprob, top)`` per generated token, without a final end-of-text token."""
    rows = list(zip(s.generated, s.token_logprobs, s.top_logprobs, strict=False))
    if rows and s.finish_reason == "stop" and rows[-1][0] == getattr(tok, "eos_token_id", None):
        rows = rows[:-1]
    return rows


def chat_logprobs(s: Sequence, tok: Any) -> dict[str, Any]:
    """OpenAI's chat ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    content = []
    for tid, lp, top in _content(s, tok):
        text, raw = _token(tok, tid)
        alts = []
        for aid, alp in top:
            atext, araw = _token(tok, aid)
            alts.append({"token": atext, "logprob": alp, "bytes": araw})
        content.append({"token": text, "logprob": lp, "bytes": raw, "top_logprobs": alts})
    return {"content": content, "refusal": None}


def completion_logprobs(s: Sequence, tok: Any) -> dict[str, Any]:
    """OpenAI's legacy ``logprobs`` object: tokens, token_logprobs, top_logprobs, text_offset."""
    tokens, lps, tops, offsets = [], [], [], []
    at = 0
    for tid, lp, top in _content(s, tok):
        text, _ = _token(tok, tid)
        tokens.append(text)
        lps.append(lp)
        offsets.append(at)
        at += len(text)
        alts: dict[str, float] = {}
        for aid, alp in top:
            alts.setdefault(_token(tok, aid)[0], alp)
        tops.append(alts)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def final_body(
    ref: str, body: Any, prepared: Any, rid: str, chat: bool, info: dict[str, Any], tok: Any
) -> dict[str, Any]:
    """The non-streamed response: the ``n`` best choices of each prompt, usage over all
    sequences generated (with ``best_of``, more than are returned, as OpenAI counts)."""
    u = record(info, prepared.seqs, prepared.per_prompt)
    seqs, echo = prepared.best(), prepared.echo_texts
    if chat:
        want = bool(body.logprobs)
        choices = [
            {"index": i, "message": {"role": "assistant", "content": s.text},
             "logprobs": chat_logprobs(s, tok) if want else None, "finish_reason": s.finish_reason}
            for i, s in enumerate(seqs)
        ]
        obj = "chat.completion"
    else:
        want = body.logprobs is not None
        choices = [
            {"index": i, "text": echo[i // body.n] + s.text,
             "logprobs": completion_logprobs(s, tok) if want else None, "finish_reason": s.finish_reason}
            for i, s in enumerate(seqs)
        ]
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": body.model, "choices": choices,
            "usage": u, "system_fingerprint": ref}


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event."""
    text = data if isinstance(data, str) else json.dumps(data)
    return b"data: " + text.encode() + b"\n\n"


class Chunks:
    """Makes the stream chunks of one response."""

    def __init__(self, ref: str, body: Any, rid: str, chat: bool) -> None:
        self.chat = chat
        obj = "chat.completion.chunk" if chat else "text_completion"
        self.base = {"id": rid, "object": obj, "created": int(time.time()), "model": body.model,
                     "system_fingerprint": ref}

    def choice(self, index: int, text: str | None, finish: str | None, role: bool = False) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return sse({**self.base, "choices": [choice]})

    def usage(self, u: dict[str, int]) -> bytes:
        return sse({**self.base, "choices": [], "usage": u})
