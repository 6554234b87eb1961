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


def _token(tok: Any, tid: int, skip_special: bool = False) -> tuple[str, list[int]]:
    text = tok.decode([tid], skip_special_tokens=skip_special)
    return text, list(text.encode("utf-8"))


Row = tuple[int, float | None, list[tuple[int, float]] | None]


def _alts(top: list[tuple[int, float]]) -> list[tuple[int, float]]:
    # a constrained row has -inf beyond its allowed tokens: those are no alternatives (and not JSON)
    return [(t, lp) for t, lp in top if lp != float("-inf")]


def content_rows(s: Sequence, tok: Any) -> list[Row]:
    """``(token id, logprob, top)`` per generated token, without a final end-of-text token."""
    rows: list[Row] = [(t, lp, _alts(top)) for t, lp, top in
                       zip(s.generated, s.token_logprobs, s.top_logprobs, strict=False)]
    if rows and s.finish_reason == "stop" and rows[-1][0] == getattr(tok, "eos_token_id", None):
        rows = rows[:-1]
    return rows


def prompt_rows(s: Sequence) -> list[Row]:
    """The prompt's rows for ``echo`` with ``logprobs``: the first token has none (as OpenAI)."""
    if not s.prompt_ids:
        return []
    first: Row = (s.prompt_ids[0], None, None)
    return [first] + [(t, lp, _alts(top)) for t, lp, top in
                      zip(s.prompt_ids[1:], s.prompt_logprobs, s.prompt_top_logprobs, strict=False)]


def chat_entries(rows: list[Row], tok: Any) -> list[dict[str, Any]]:
    """Rows as OpenAI's chat ``logprobs.content`` entries."""
    content = []
    for tid, lp, top in rows:
        text, raw = _token(tok, tid)
        alts = []
        for aid, alp in top or []:
            atext, araw = _token(tok, aid)
            alts.append({"token": atext, "logprob": alp, "bytes": araw})
        content.append({"token": text, "logprob": lp, "bytes": raw, "top_logprobs": alts})
    return content


def chat_logprobs(s: Sequence, tok: Any) -> dict[str, Any]:
    """OpenAI's chat ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    return {"content": chat_entries(content_rows(s, tok), tok), "refusal": None}


def legacy_entries(rows: list[Row], tok: Any, at: int = 0, prompt: int = 0) -> tuple[dict[str, Any], int]:
    """Rows as OpenAI's legacy ``logprobs`` object (tokens, token_logprobs, top_logprobs,
    text_offset from ``at``), and the offset after them. The first ``prompt`` rows are the
    echoed prompt's: their special tokens are not in the echoed text and take no room."""
    tokens, lps, tops, offsets = [], [], [], []
    for k, (tid, lp, top) in enumerate(rows):
        text, _ = _token(tok, tid)
        tokens.append(text)
        lps.append(lp)
        offsets.append(at)
        at += len(_token(tok, tid, True)[0]) if k < prompt else len(text)
        if top is None:
            tops.append(None)
            continue
        alts: dict[str, float] = {}
        for aid, alp in top:
            alts.setdefault(_token(tok, aid)[0], alp)
        tops.append(alts)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}, at


def completion_logprobs(s: Sequence, tok: Any, echo: bool = False) -> dict[str, Any]:
    """OpenAI's legacy ``logprobs`` object; with ``echo``, the prompt's tokens first."""
    head = prompt_rows(s) if echo else []
    return legacy_entries(head + content_rows(s, tok), tok, prompt=len(head))[0]


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
             "logprobs": completion_logprobs(s, tok, body.echo) if want else None,
             "finish_reason": s.finish_reason}
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

    def choice(self, index: int, text: str | None, finish: str | None, role: bool = False,
               logprobs: Any = None) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
        return sse({**self.base, "choices": [choice]})

    def usage(self, u: dict[str, int]) -> bytes:
        return sse({**self.base, "choices": [], "usage": u})


class StreamLogprobs:
    """Per choice of a stream: the logprobs of the tokens not yet sent, for each chunk.

    A chunk carries the tokens generated up to the engine's event that made it (its text
    may still hold back the end of them: an incomplete character or a possible stop
    string); the last chunk carries the rest, so the chunks together list what the
    non-streamed response lists."""

    def __init__(self, tok: Any, chat: bool, count: int) -> None:
        self.tok, self.chat = tok, chat
        self.sent = [0] * count
        self.offset = [0] * count

    def prompt(self, i: int, s: Sequence) -> dict[str, Any]:
        """The echoed prompt's logprobs (legacy completions), first chunk of choice ``i``."""
        rows = prompt_rows(s)
        out, self.offset[i] = legacy_entries(rows, self.tok, self.offset[i], prompt=len(rows))
        return out

    def chunk(self, i: int, s: Sequence, upto: int | None) -> dict[str, Any] | None:
        """The logprobs object of choice ``i``'s next chunk (tokens up to ``upto``; None: all),
        or None when it has no new token."""
        rows = content_rows(s, self.tok)
        end = len(rows) if upto is None else min(upto, len(rows))
        new = rows[self.sent[i]:end]
        self.sent[i] = max(self.sent[i], end)
        if not new:
            return None  # a chunk of held-back text whose tokens were sent already, or the last one
        if self.chat:
            return {"content": chat_entries(new, self.tok), "refusal": None}
        out, self.offset[i] = legacy_entries(new, self.tok, self.offset[i])
        return out
