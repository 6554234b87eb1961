"""The OpenAI-compatible endpoints: models, completions, chat completions."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmos.sdk import NotFoundError

from llmos_serve import responses
from llmos_serve.engine import EngineStopped, QueueFull, Sequence
from llmos_serve.errors import ERROR_RESPONSES, ApiError, error_body
from llmos_serve.middleware import VERSION_HEADER
from llmos_serve.pool import Lease, NotReady
from llmos_serve.protocol import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList
from llmos_serve.sequences import build_sequences, check_features, check_sizes

router = APIRouter(prefix="/v1", tags=["openai"], responses=ERROR_RESPONSES)


def _cards(st: Any) -> list[ModelCard]:
    pool = st.pool
    cards = []
    for mid in pool.model_ids():
        version = pool.ref_for(mid)
        loaded = pool.loaded(version)
        ctx = loaded.context_length if loaded is not None else None
        parent = loaded.base if loaded is not None else None
        cards.append(ModelCard(id=mid, created=st.created, version=version, max_model_len=ctx, parent=parent))
    return cards


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """The model ids this server answers to."""
    return ModelList(data=_cards(request.app.state.llmos))


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request) -> ModelCard:
    """One model id."""
    for card in _cards(request.app.state.llmos):
        if card.id == model_id:
            return card
    raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Any:
    """Complete a prompt (OpenAI ``/v1/completions``); ``stream: true`` for SSE."""
    return await _generate(request, body, chat=False)


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """Answer a conversation (OpenAI ``/v1/chat/completions``); ``stream: true`` for SSE."""
    return await _generate(request, body, chat=True)


async def _generate(request: Request, body: Any, *, chat: bool) -> Any:
    st = request.app.state.llmos
    pool, config = st.pool, st.config
    info: dict[str, Any] = request.scope.get("llmos.info", {})
    info["stream"] = body.stream
    check_features(body, chat=chat)
    try:
        lease = pool.acquire(body.model)
    except NotFoundError as exc:
        raise ApiError(404, exc.message, param="model", code="model_not_found") from exc
    except NotReady as exc:
        raise ApiError(503, exc.message, headers={"Retry-After": "2"}) from exc
    info["version"] = lease.ref
    info["model"] = lease.model.name  # the served name, never what a client typed
    handed_over = False
    seqs: list[Sequence] = []
    try:
        check_sizes(lease.model, body, chat=chat)  # by bytes, before any tokenizing
        # tokenizing and templating run in a worker thread: the event loop keeps answering
        prepared = await run_in_threadpool(build_sequences, lease.model, body, chat=chat, config=config)
        seqs, echo_texts = prepared.seqs, prepared.echo_texts
        info["prompt_tokens"] = prepared.prompt_tokens
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any, int, int]] = asyncio.Queue()
        for i, s in enumerate(seqs):
            s.stream = body.stream
            # called in the engine thread: how many tokens the event covers is read there
            s.sink = lambda ev, i=i, s=s: loop.call_soon_threadsafe(
                events.put_nowait, (ev[0], ev[1], i, len(s.generated)))
        capacity = lease.engine.max_batch_size + lease.engine.max_queue
        if len(seqs) > capacity:
            raise ApiError(
                400, f"this request asks for {len(seqs)} sequences (prompts x n); this server holds at most "
                f"{capacity} at once: lower n or send fewer prompts", param="n",
            )
        try:
            lease.engine.submit(seqs)
        except QueueFull as exc:
            raise ApiError(
                429, f"the server is busy ({exc}); retry after a second", code="queue_full",
                headers={"Retry-After": "1"},
            ) from exc
        except EngineStopped as exc:
            raise ApiError(503, "the model version is being unloaded; retry", headers={"Retry-After": "1"}) from exc
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        headers = {VERSION_HEADER: lease.ref}
        if body.stream:
            handed_over = True
            gen = _stream(lease, body, seqs, events, rid, chat, echo_texts, info, config.timeout)
            # a stream dropped before it ever started still frees its slots and its version
            weakref.finalize(gen, _abandon, list(seqs), lease)
            return StreamingResponse(
                gen, media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        await _wait_all(request, seqs, events, config.timeout)
        out = responses.final_body(lease.ref, body, prepared, rid, chat, info, lease.model.tokenizer)
        return JSONResponse(out, headers=headers)
    finally:
        if not handed_over:
            for s in seqs:
                s.cancel()
            lease.release()


def _abandon(seqs: list[Sequence], lease: Lease) -> None:
    for s in seqs:
        s.cancel()
    lease.release()


async def _wait_all(request: Request, seqs: list[Sequence], events: asyncio.Queue[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout

    async def collect() -> None:
        left = len(seqs)
        while left:
            kind, *_ = await events.get()
            if kind == "finish":
                left -= 1

    async def disconnected() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(0.25)

    task = asyncio.ensure_future(collect())
    watch = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait(
            {task, watch}, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
    if task not in done:
        for s in seqs:
            s.cancel()
        if watch in done:
            raise ApiError(499, "client closed the request")
        raise ApiError(504, f"the request took longer than {timeout:g} s; ask for fewer tokens", code="timeout")
    failed = [s for s in seqs if s.finish_reason == "error"]
    if failed:
        raise ApiError(500, f"generation failed: {failed[0].error}")
    if any(s.finish_reason == "cancelled" for s in seqs):
        raise ApiError(503, "the request was cancelled because the server is shutting down",
                       headers={"Retry-After": "1"})


def _wants_logprobs(body: Any, chat: bool) -> bool:
    return bool(body.logprobs) if chat else body.logprobs is not None


async def _stream(
    lease: Lease, body: Any, seqs: list[Sequence], events: asyncio.Queue[Any],
    rid: str, chat: bool, echo: list[str], info: dict[str, Any], timeout: float,
) -> AsyncIterator[bytes]:
    chunks = responses.Chunks(lease.ref, body, rid, chat)
    lps = responses.StreamLogprobs(lease.model.tokenizer, chat, len(seqs)) if _wants_logprobs(body, chat) else None
    # echo with logprobs waits for the prompt's logprobs (known once the prompt is prefilled)
    echo_later = [bool(not chat and body.echo and echo[i // body.n] and lps is not None) for i in range(len(seqs))]
    deadline = time.monotonic() + timeout
    try:
        for i in range(len(seqs)):
            if chat:
                yield chunks.choice(i, "", None, role=True)
            elif body.echo and echo[i // body.n] and not echo_later[i]:
                yield chunks.choice(i, echo[i // body.n], None)
        left = len(seqs)
        while left:
            try:
                kind, payload, i, upto = await asyncio.wait_for(events.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                yield responses.sse(error_body(504, f"the request took longer than {timeout:g} s", code="timeout"))
                break
            seq = seqs[i]
            if echo_later[i] and lps is not None:
                echo_later[i] = False
                yield chunks.choice(i, echo[i // body.n], None, logprobs=lps.prompt(i, seq))
            if kind == "delta":
                yield chunks.choice(i, payload, None, logprobs=lps.chunk(i, seq, upto) if lps else None)
            elif kind == "finish":
                left -= 1
                if seq.finish_reason == "error":
                    yield responses.sse(error_body(500, f"generation failed: {seq.error}"))
                else:
                    yield chunks.choice(i, None if chat else "", seq.finish_reason,
                                        logprobs=lps.chunk(i, seq, None) if lps else None)
        u = responses.record(info, seqs, body.n)
        if body.stream_options is not None and body.stream_options.include_usage:
            yield chunks.usage(u)
        yield responses.sse("[DONE]")
    finally:
        for s in seqs:  # a client that went away frees its slots at the next engine step
            s.cancel()
        lease.release()
