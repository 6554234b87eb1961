"""Hook module of llmos-data (light: imports only llmos)."""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_data_steps(register):
    from llmos_data.config import CorpusConfig

    register(
        "corpus",
        "llmos_data.corpus:CorpusStep",
        config=CorpusConfig,
        description="Text corpus (files, folders, globs or the offline stdlib docstrings) → "
        "cleaned, deduplicated, split, BPE-tokenized, packed into memory-mapped blocks",
    )
    from llmos_data.chat import ChatConfig

    register(
        "chat",
        "llmos_data.chat:ChatStep",
        config=ChatConfig,
        description="Instruction/chat JSON Lines (OpenAI messages or prompt/response) → chat template → "
        "blocks with the loss masked to the assistant turns (packing keeps the mask)",
    )


@hookimpl
def llmos_register_data_readers(register):
    from llmos_data.config import CsvReaderConfig, FieldReaderConfig, NoReaderSettings, TextReaderConfig

    register("txt", "llmos_data.readers:read_text", config=TextReaderConfig,
             description="Plain text: the whole file (or each paragraph) is a document; .txt")
    register("md", "llmos_data.readers:read_text", config=TextReaderConfig,
             description="Markdown, read as plain text; .md, .markdown")
    register("jsonl", "llmos_data.readers:read_jsonl", config=FieldReaderConfig,
             description="JSON Lines: one document per record, from text_field (dots for nesting); .jsonl")
    register("wikitext", "llmos_data.readers:read_wikitext", config=NoReaderSettings,
             description="WikiText raw files: one document per article, detokenised; .raw, .tokens")
    register("csv", "llmos_data.readers:read_csv", config=CsvReaderConfig,
             description="CSV with a header: one document per row, from the column text_field; .csv")
    register("parquet", "llmos_data.readers:read_parquet", config=FieldReaderConfig,
             description="Parquet: one document per row of the string column text_field (pyarrow); .parquet")


@hookimpl
def llmos_register_tokenizer_trainers(register):
    from llmos_data.config import BpeTrainerConfig

    register("bpe", "llmos_data.tokenizer:train_bpe_tokenizer", config=BpeTrainerConfig,
             description="Byte-level BPE (Hugging Face tokenizers), pad/bos/eos as the first ids")
