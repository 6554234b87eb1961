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
