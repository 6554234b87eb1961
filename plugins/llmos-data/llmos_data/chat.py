"""``data.chat``: instruction and chat datasets (JSON Lines) with the loss masked.

Each line of a ``.jsonl`` file is one example, either OpenAI-style messages::

    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is 2+2?"},
                  {"role": "assistant", "content": "4"}]}

or a prompt/response pair (an optional ``system`` field)::

    {"prompt": "What is 2+2?", "response": "4"}

Examples are rendered with the chat template — the ``chat_template`` setting, else the
tokenizer's own, else ``llmos_models.chat.DEFAULT_CHAT_TEMPLATE`` — and encoded with
labels: the assistant turns' tokens, ``-100`` on system and user turns, on the
template's markup and on padding. Packing concatenates examples (ids and labels
together) and cuts blocks, so the mask travels with the tokens; ``pack = false``
puts one example per block, padded.

The dataset is a :class:`~llmos_data.dataset.PackedDataset` whose splits are
``(n_blocks, 2, block_size)`` int32 arrays: ``[:, 0]`` token ids, ``[:, 1]`` labels
(the training loop and ``model.evaluate`` take the loss where labels are not -100).
The template is set on the tokenizer (``ctx.artifacts["tokenizer"]``), so the
version ``model.register`` saves carries it in ``tokenizer_config.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmos.sdk import ValidationError
from llmos.sdk import DATASET, TOKENIZER

IGNORE = -100


class ChatConfig(BaseModel):
    """Where the conversations come from and how they become masked blocks."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(..., min_length=1, description="JSON Lines files of examples (messages or prompt/response).")
    format: Literal["auto", "messages", "prompt-response"] = Field(
        "auto", description="auto (per line: 'messages' if present, else prompt/response), messages or prompt-response."
    )
    messages_field: str = Field("messages", description="Field holding the list of messages.")
    prompt_field: str = Field("prompt", description="Field holding the prompt (prompt/response examples).")
    response_field: str = Field("response", description="Field holding the response (prompt/response examples).")
    system_field: str = Field("system", description="Optional field with a system message (prompt/response examples).")
    chat_template: str | None = Field(
        None, description="Jinja chat template (default: the tokenizer's own, else llmos's default template)."
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer directory (default: the tokenizer of the model loaded before this stage)."
    )
    block_size: int = Field(128, ge=2, le=1_048_576, description="Tokens per block.")
    pack: bool = Field(True, description="Concatenate examples into full blocks (False: one example per block, padded).")
    validation_fraction: float = Field(0.1, ge=0, lt=1, description="Fraction of examples (by hash) for validation.")
    test_fraction: float = Field(0.0, ge=0, lt=1, description="Fraction of examples (by hash) held out for test.")

    @model_validator(mode="after")
    def _fractions(self) -> ChatConfig:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must be below 1 (some examples must train)")
        return self


def _messages(record: Any, cfg: ChatConfig, where: str) -> list[dict[str, str]]:
    from llmos_models.chat import check_messages

    if not isinstance(record, dict):
        raise ValidationError(f"{where}: each line must be a JSON object")
    if cfg.format == "messages" or (cfg.format == "auto" and cfg.messages_field in record):
        return check_messages(record.get(cfg.messages_field), f"{where}: {cfg.messages_field}")
    prompt, response = record.get(cfg.prompt_field), record.get(cfg.response_field)
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise ValidationError(
            f"{where}: needs '{cfg.messages_field}' (a list of messages) or string fields "
            f"'{cfg.prompt_field}' and '{cfg.response_field}'"
        )
    msgs = []
    system = record.get(cfg.system_field)
    if isinstance(system, str) and system:
        msgs.append({"role": "system", "content": system})
    msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return msgs


def read_examples(cfg: ChatConfig) -> list[tuple[str, list[dict[str, str]]]]:
    """``(line hash, messages)`` of every example, in file order; located errors."""
    out = []
    for p in cfg.paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise ValidationError(f"data.chat: {p!r} is not a file: give JSON Lines files in 'paths'")
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValidationError(f"{where}: not valid JSON ({exc})") from None
                out.append((hashlib.sha256(line.strip().encode()).hexdigest(), _messages(record, cfg, where)))
    if not out:
        raise ValidationError(f"data.chat: no examples in {', '.join(cfg.paths)}")
    return out


def _split_of(digest: str, cfg: ChatConfig) -> str:
    u = int(digest[:12], 16) / float(16**12)
    if u < cfg.test_fraction:
        return "test"
    if u < cfg.test_fraction + cfg.validation_fraction:
        return "validation"
    return "train"


def pack(examples: list[tuple[list[int], list[int]]], block_size: int, pad_id: int, *, packed: bool = True) -> Any:
    """Blocks ``(n, 2, block_size)`` int32 of ``(ids, labels)`` examples: concatenated and cut
    (``packed``), or one per block; the tail is padded with ``pad_id`` labelled -100."""
    import numpy as np

    if not examples:
        return np.zeros((0, 2, block_size), dtype=np.int32)
    if packed:
        ids = [t for e in examples for t in e[0]]
        labels = [t for e in examples for t in e[1]]
        n = -(-len(ids) // block_size)
        flat_ids = np.full(n * block_size, pad_id, dtype=np.int32)
        flat_labels = np.full(n * block_size, IGNORE, dtype=np.int32)
        flat_ids[: len(ids)] = ids
        flat_labels[: len(labels)] = labels
        return np.stack([flat_ids.reshape(n, block_size), flat_labels.reshape(n, block_size)], axis=1)
    out = np.full((len(examples), 2, block_size), IGNORE, dtype=np.int32)
    out[:, 0, :] = pad_id
    for i, (ids, labels) in enumerate(examples):
        out[i, 0, : min(len(ids), block_size)] = ids[:block_size]
        out[i, 1, : min(len(labels), block_size)] = labels[:block_size]
    return out


def build_chat_dataset(cfg: ChatConfig, tokenizer: Any, workdir: Path) -> Any:
    """Encode, split, pack and write the dataset into ``workdir``; returns the
    :class:`PackedDataset` (its tokenizer saved beside it, carrying the template)."""
    from llmos_models.chat import encode_chat, template_of

    from llmos_data.dataset import META, PackedDataset

    template = template_of(tokenizer, cfg.chat_template)
    tokenizer.chat_template = template
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValidationError("data.chat: the tokenizer has neither a pad nor an end-of-sequence token to pad with")
    by_split: dict[str, list[tuple[list[int], list[int]]]] = {"train": [], "validation": [], "test": []}
    trained = 0
    sha = hashlib.sha256()
    for digest, messages in read_examples(cfg):
        sha.update(digest.encode())
        ids, labels = encode_chat(tokenizer, messages, template)
        trained += sum(1 for t in labels if t != IGNORE)
        by_split[_split_of(digest, cfg)].append((ids, labels))
    if not by_split["train"]:
        raise ValidationError("data.chat: no example landed in the training split: add examples or lower the fractions")
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".chat-", dir=workdir))
    try:
        tok_dir = tmp / "tokenizer"
        tokenizer.save_pretrained(str(tok_dir), save_jinja_files=False)
        blocks: dict[str, int] = {}
        for name, examples in by_split.items():
            arr = pack(examples, cfg.block_size, int(pad_id), packed=cfg.pack)
            blocks[name] = int(arr.shape[0])
            arr.tofile(tmp / f"{name}.bin")
        final = workdir / "dataset"
        meta = {
            "format_version": 1,
            "labels": True,
            "corpus_sha256": sha.hexdigest(),
            "source": list(cfg.paths),
            "vocab_size": len(tokenizer),
            "block_size": cfg.block_size,
            "dtype": "int32",
            "blocks": blocks,
            "tokenizer_dir": str(final / "tokenizer"),
            "special_tokens": {k: getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "pad")
                               if getattr(tokenizer, f"{k}_token_id", None) is not None},
            "stats": {"examples": {k: len(v) for k, v in by_split.items()}, "trained_tokens": trained,
                      "tokens": {k: sum(len(e[0]) for e in v) for k, v in by_split.items()}, "blocks": blocks},
            "settings": cfg.model_dump(mode="json"),
        }
        (tmp / META).write_text(json.dumps(meta, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PackedDataset(final)


class ChatStep:
    """``data.chat``: writes ``ctx.artifacts["dataset"]`` (masked blocks) and
    ``ctx.artifacts["tokenizer"]`` (carrying the chat template)."""

    def __init__(self, config: ChatConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_data.tokenizer import load_tokenizer

        cfg = self.config
        if cfg.tokenizer:
            tokenizer = load_tokenizer(cfg.tokenizer)
        elif TOKENIZER.get(ctx) is not None:
            tokenizer = TOKENIZER.get(ctx)
        else:
            raise ValidationError(
                "data.chat needs a tokenizer: put model.load (a registered model) before it, or set 'tokenizer'"
            )
        stage_id = getattr(ctx.stage, "id", None) or "chat"
        ds = build_chat_dataset(cfg, tokenizer, Path(ctx.workdir) / stage_id)
        DATASET.set(ctx, ds)
        TOKENIZER.set(ctx, ds.tokenizer())
        s = ds.stats
        summary = {f"{k}_examples": float(v) for k, v in s["examples"].items()}
        summary.update(trained_tokens=float(s["trained_tokens"]),
                       **{f"{k}_blocks": float(v) for k, v in s["blocks"].items()})
        ctx.log_metrics(None, summary, kind="data")
        return summary

    __call__ = run
