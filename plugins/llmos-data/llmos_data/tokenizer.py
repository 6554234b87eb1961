"""Byte-level BPE tokenizer trained with Hugging Face ``tokenizers``.

Saved as a ``transformers`` ``PreTrainedTokenizerFast`` directory (``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``), so
``transformers.AutoTokenizer.from_pretrained(tokenizer_dir)`` loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def train_bpe(
    texts: Iterator[str],
    *,
    vocab_size: int,
    min_frequency: int = 2,
    special_tokens: list[str],
) -> Any:
    """Train a ByteLevel BPE ``tokenizers.Tokenizer`` on an iterator of documents.

    Special tokens get the first ids, in the order given (pad, bos, eos by default).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_bpe_tokenizer(texts: Iterator[str], config: Any) -> Any:
    """The ``bpe`` tokenizer trainer llmos-data registers (``llmos_register_tokenizer_trainers``):
    byte-level BPE with pad, bos and eos as its first ids, as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    tok = train_bpe(texts, vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                    special_tokens=[config.pad_token, config.bos_token, config.eos_token])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=config.bos_token, eos_token=config.eos_token,
                                   pad_token=config.pad_token, clean_up_tokenization_spaces=False)


def save_tokenizer(tok: Any, directory: Path, *, bos: str, eos: str, pad: str, model_max_length: int) -> Any:
    """Write ``tok`` as a PreTrainedTokenizerFast directory; return the HF tokenizer."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    from llmos_models.chat import with_chat_template

    directory.mkdir(parents=True, exist_ok=True)
    # the default chat template, in tokenizer_config.json: models trained on this tokenizer chat with it
    with_chat_template(hf).save_pretrained(str(directory), save_jinja_files=False)
    if not (directory / "tokenizer.json").exists():  # pragma: no cover - older transformers
        tok.save(str(directory / "tokenizer.json"))
    return hf


def load_tokenizer(directory: Path | str) -> Any:
    """Load a tokenizer directory written by :func:`save_tokenizer` (or any HF fast tokenizer)."""
    from transformers import PreTrainedTokenizerFast

    from llmos.sdk import NotFoundError

    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        raise NotFoundError(f"no tokenizer.json in {directory}: point 'tokenizer' at a tokenizer directory")
    return PreTrainedTokenizerFast.from_pretrained(str(directory))
