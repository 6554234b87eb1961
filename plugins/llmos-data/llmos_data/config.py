"""Settings of the ``data.corpus`` component (pydantic; imported by the hook lazily)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


# -- settings of the readers llmos-data registers (llmos_register_data_readers) ---------------
# Fields named like a corpus setting (text_field, split_paragraphs) are filled from it.


class TextReaderConfig(BaseModel):
    """``txt`` and ``md``: the whole file is a document, or each paragraph."""

    model_config = ConfigDict(extra="forbid")

    split_paragraphs: bool = Field(False, description="Each blank-line separated paragraph is a document.")


class FieldReaderConfig(BaseModel):
    """``jsonl`` (a field of each record) and ``parquet`` (a string column)."""

    model_config = ConfigDict(extra="forbid")

    text_field: str = Field("text", description="Field (jsonl, dots for nesting) or column holding the text.")


class CsvReaderConfig(BaseModel):
    """``csv``: one document per row, from a column chosen by its header."""

    model_config = ConfigDict(extra="forbid")

    text_field: str = Field("text", description="Header of the column holding the text.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field delimiter (one character).")


class NoReaderSettings(BaseModel):
    """A reader without settings (``wikitext``)."""

    model_config = ConfigDict(extra="forbid")


# -- settings of the tokenizer trainer llmos-data registers (llmos_register_tokenizer_trainers) --


class BpeTrainerConfig(BaseModel):
    """``bpe``: byte-level BPE (Hugging Face tokenizers). Fields named like a corpus setting
    (vocab_size, min_frequency, the special tokens) are filled from it."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(4096, ge=300, le=1_000_000, description="Vocabulary size (incl. special tokens).")
    min_frequency: int = Field(2, ge=1, description="Minimum pair frequency for a merge.")
    bos_token: str = "<|bos|>"
    eos_token: str = "<|eos|>"
    pad_token: str = "<|pad|>"


def _extension_settings(kind: str, name: str, data: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """``data`` validated by the config of extension ``name`` (ValueError for pydantic),
    with the ``shared`` corpus settings its model declares as defaults."""
    import pydantic

    from llmos.sdk import find_extension

    ext = find_extension(kind, name)
    if ext.config is None:
        if data:
            raise ValueError(f"{name!r} takes no settings, got {sorted(data)}")
        return {}
    merged = {k: v for k, v in shared.items() if k in ext.config.model_fields}
    merged.update(data or {})
    try:
        return ext.config.model_validate(merged).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        from llmos.sdk import format_validation_error

        raise ValueError(format_validation_error(exc)) from None


class CorpusConfig(BaseModel):
    """Where the text comes from and how it becomes training blocks."""

    model_config = ConfigDict(extra="forbid")

    # -- sources ---------------------------------------------------------------
    paths: list[str] = Field(
        default_factory=list,
        description="Files, folders (searched recursively) or glob patterns of .txt/.md/.jsonl/WikiText "
        "files; empty = the default offline corpus (Python standard library docstrings).",
    )
    format: str = Field(
        "auto",
        description="Data reader by name: auto (by file extension; WikiText detected by its '= Heading =' lines), "
        "txt, md, jsonl, wikitext, csv, parquet, or one a plugin registers with llmos_register_data_readers.",
    )
    text_field: str = Field(
        "text", description="Field (.jsonl, dots for nesting) or column (.csv, .parquet) holding the text."
    )
    split_paragraphs: bool = Field(
        False, description="Treat each blank-line separated paragraph of a .txt/.md file as its own document."
    )
    reader_config: dict[str, Any] = Field(
        default_factory=dict, validate_default=True,
        description="Settings of the reader named by format (e.g. delimiter for csv); needs a format other than auto.",
    )
    stdlib_parts: list[Literal["docstrings", "comments"]] = Field(
        default_factory=lambda: ["docstrings"],
        description="For the default corpus: docstrings (prose) and/or comment blocks of the stdlib.",
    )
    max_bytes: int | None = Field(
        None, ge=1, description="Stop reading once this many bytes of cleaned text are kept (None = no limit)."
    )
    max_documents: int | None = Field(None, ge=1, description="Stop after this many kept documents.")

    # -- cleaning --------------------------------------------------------------
    normalize: Literal["NFC", "NFKC", "none"] = Field("NFC", description="Unicode normalisation form.")
    clean_whitespace: bool = Field(
        True, description="Strip trailing spaces, collapse runs of spaces/tabs and of 3+ newlines."
    )
    min_chars: int = Field(20, ge=0, description="Drop documents shorter than this (characters, after cleaning).")
    max_chars: int | None = Field(None, ge=1, description="Drop documents longer than this (None = no limit).")
    dedup: bool = Field(True, description="Drop exact duplicate documents (sha256 of the cleaned text).")
    near_dedup: bool = Field(True, description="Drop near-duplicates (MinHash over character shingles + LSH).")
    near_dedup_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Estimated Jaccard similarity at or above which a document is a near-duplicate."
    )
    shingle_size: int = Field(5, ge=1, le=64, description="Character shingle length for MinHash.")
    num_perm: int = Field(64, ge=8, le=512, description="MinHash signature length (number of hash functions).")

    # -- split -----------------------------------------------------------------
    validation_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Fraction of documents (chosen by document hash) put in validation."
    )
    test_fraction: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Fraction of documents (by hash) held out as a test split: model selection uses validation, "
        "reports use test (model.evaluate scores both).",
    )

    # -- tokenizer -------------------------------------------------------------
    vocab_size: int = Field(4096, ge=300, le=1_000_000, description="BPE vocabulary size (incl. special tokens).")
    min_frequency: int = Field(2, ge=1, description="Minimum pair frequency for a BPE merge.")
    tokenizer_train_bytes: int | None = Field(
        100_000_000,
        ge=1,
        description="Train the tokenizer on at most this many bytes of the training split (None = all).",
    )
    bos_token: str = Field("<|bos|>", description="Beginning-of-sequence special token.")
    eos_token: str = Field("<|eos|>", description="End-of-sequence special token (appended to every document).")
    pad_token: str = Field("<|pad|>", description="Padding special token.")
    tokenizer: str | None = Field(
        None, description="Use this existing tokenizer directory (with tokenizer.json) instead of training one."
    )
    tokenizer_trainer: str = Field(
        "bpe", description="Tokenizer trainer by name: bpe, or one a plugin registers with "
        "llmos_register_tokenizer_trainers.",
    )
    tokenizer_trainer_config: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, description="Settings of that trainer beyond vocab_size and the special tokens."
    )

    add_bos: bool = Field(
        True, description="The trained tokenizer starts every text with bos_token: each packed document begins "
        "with it, and so does every prompt at generation and serving time (training and generation agree).",
    )

    # -- packing ---------------------------------------------------------------
    block_size: int = Field(128, ge=2, le=1_048_576, description="Tokens per training block.")
    cache: bool = Field(True, description="Reuse tokenizers and packed arrays from $LLMOS_HOME/cache.")

    @field_validator("text_field")
    @classmethod
    def _field_name(cls, value: str) -> str:
        if not value or any(not part for part in value.split(".")):
            raise ValueError("text_field must be a field name like 'text' or 'meta.body'")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, name: str) -> str:
        if name != "auto":
            _exists("data_readers", name)
        return name

    @field_validator("tokenizer_trainer")
    @classmethod
    def _trainer(cls, name: str) -> str:
        _exists("tokenizer_trainers", name)
        return name

    @field_validator("reader_config")
    @classmethod
    def _reader_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if not {"format", "text_field", "split_paragraphs"} <= set(info.data):
            return value
        if info.data["format"] == "auto":
            if value:
                raise ValueError("reader_config needs a format: set format to the reader it configures")
            return value
        shared = {k: info.data[k] for k in ("text_field", "split_paragraphs")}
        return _extension_settings("data_readers", info.data["format"], value, shared)

    @field_validator("tokenizer_trainer_config")
    @classmethod
    def _trainer_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        keys = ("vocab_size", "min_frequency", "bos_token", "eos_token", "pad_token")
        if not {"tokenizer_trainer", "tokenizer", *keys} <= set(info.data) or info.data["tokenizer"] is not None:
            return value
        return _extension_settings("tokenizer_trainers", info.data["tokenizer_trainer"], value,
                                   {k: info.data[k] for k in keys})

    @model_validator(mode="after")
    def _check(self) -> CorpusConfig:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must be below 1 (some documents must train)")
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is smaller than min_chars ({self.min_chars})")
        specials = [self.bos_token, self.eos_token, self.pad_token]
        if any(not s for s in specials) or len(set(specials)) != 3:
            raise ValueError("bos_token, eos_token and pad_token must be three different non-empty strings")
        if self.num_perm % _bands(self.num_perm, self.near_dedup_threshold)[0]:
            raise ValueError("num_perm must be divisible into LSH bands")  # pragma: no cover - _bands ensures it
        return self


def _exists(kind: str, name: str) -> None:
    from llmos.sdk import LlmosError
    from llmos.sdk import get_manager

    try:
        get_manager().get_extension(kind, name)
    except LlmosError as exc:
        raise ValueError(exc.message) from None


def _bands(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows) for LSH: the divisor pair of ``num_perm`` whose S-curve threshold
    ``(1/b)^(1/r)`` is closest to ``threshold``."""
    best = (num_perm, 1)
    best_err = float("inf")
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        err = abs((1.0 / bands) ** (1.0 / rows) - threshold)
        if err < best_err:
            best, best_err = (bands, rows), err
    return best
