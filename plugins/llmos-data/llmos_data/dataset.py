"""The packed dataset: token blocks in memory-mapped files plus their metadata.

A dataset directory holds ``meta.json`` and one ``<split>.bin`` per split (raw
little-endian ``uint16``, or ``uint32`` for vocabularies of 65536 tokens or more).
``PackedDataset.split(name)`` maps the file read-only as an ``(n_blocks, block_size)``
numpy array: nothing is read until a block is used, so corpora larger than RAM work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError

META = "meta.json"


class PackedDataset:
    """What ``data.corpus`` puts in ``ctx.artifacts["dataset"]``.

    :ivar path: the dataset directory.
    :ivar vocab_size: tokenizer vocabulary size (models size their embeddings by it).
    :ivar block_size: tokens per block.
    :ivar tokenizer_dir: directory with ``tokenizer.json`` (loadable by ``AutoTokenizer``).
    :ivar corpus_sha256: hash of the source corpus (formats and bytes).
    :ivar stats: documents kept/dropped per reason, bytes, tokens and blocks per split.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            raise NotFoundError(f"{self.path} is not a packed dataset (no {META})")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        self.vocab_size: int = int(self.meta["vocab_size"])
        self.block_size: int = int(self.meta["block_size"])
        self.tokenizer_dir = Path(self.meta["tokenizer_dir"])
        self.corpus_sha256: str = self.meta["corpus_sha256"]
        self.stats: dict[str, Any] = self.meta["stats"]
        self.dtype: str = self.meta["dtype"]
        self.special_tokens: dict[str, int] = self.meta.get("special_tokens", {})
        self._maps: dict[str, Any] = {}

    @classmethod
    def open(cls, path: Path | str) -> PackedDataset:
        return cls(path)

    @property
    def splits(self) -> list[str]:
        return sorted(self.meta["blocks"])

    @property
    def eos_token_id(self) -> int | None:
        return self.special_tokens.get("eos")

    def n_blocks(self, name: str) -> int:
        self._check(name)
        return int(self.meta["blocks"][name])

    def _check(self, name: str) -> None:
        if name not in self.meta["blocks"]:
            raise NotFoundError(f"dataset has no split {name!r}; splits: {', '.join(self.splits)}")

    def split(self, name: str) -> Any:
        """The blocks of split ``name`` (``"train"``, ``"validation"``, ``"test"``) as a read-only
        memory-mapped ``numpy`` array of shape ``(n_blocks, block_size)`` — or
        ``(n_blocks, 2, block_size)`` (ids, labels) when :attr:`has_labels`."""
        self._check(name)
        if name not in self._maps:
            import numpy as np

            n = self.n_blocks(name)
            if n == 0:
                self._maps[name] = np.zeros((0, *self._row_shape), dtype=self.dtype)
            else:
                self._maps[name] = np.memmap(self.path / f"{name}.bin", dtype=self.dtype, mode="r",
                                             shape=(n, *self._row_shape))
        return self._maps[name]

    @property
    def has_labels(self) -> bool:
        """True when each block is ``(2, block_size)``: token ids and labels (-100: no loss), e.g. ``data.chat``."""
        return bool(self.meta.get("labels"))

    @property
    def _row_shape(self) -> tuple[int, ...]:
        return (2, self.block_size) if self.has_labels else (self.block_size,)

    def tokenizer(self) -> Any:
        """Load the dataset's tokenizer (a ``transformers.PreTrainedTokenizerFast``)."""
        from llmos_data.tokenizer import load_tokenizer

        return load_tokenizer(self.tokenizer_dir)

    def __getstate__(self) -> dict[str, Any]:  # memory maps are reopened after unpickling
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def __repr__(self) -> str:
        blocks = ", ".join(f"{k}={v}" for k, v in sorted(self.meta["blocks"].items()))
        return f"PackedDataset({str(self.path)!r}, vocab_size={self.vocab_size}, block_size={self.block_size}, {blocks})"
