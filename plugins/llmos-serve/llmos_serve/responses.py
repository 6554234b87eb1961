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


def final_body(
    ref: str, body: Any, seqs: list[Sequence], rid: str, chat: bool, echo: list[str], info: dict[str, Any]
) -> dict[str, Any]:
    u = record(info, seqs, body.n)
    if chat:
        choices = [
            {"index": i, "message": {"role": "assistant", "content": s.text}, "logprobs": None,
             "finish_reason": s.finish_reason}
            for i, s in enumerate(seqs)
        ]
        obj = "chat.completion"
    else:
        choices = [
            {"index": i, "text": echo[i // body.n] + s.text, "logprobs": None, "finish_reason": s.finish_reason}
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
