"""The ``data.corpus`` step: sources → cleaning → dedup → split → BPE → packed blocks.

Everything streams: documents are read one at a time, cleaned documents are spooled to
disk, the tokenizer trains on an iterator, and tokens are appended to the split files in
batches. Memory use is bounded by the dedup hashes (about 100 bytes per document), not
by the corpus size.

Results are cached in ``$LLMOS_HOME/cache``:

- ``tokenizers/<corpus sha256[:16]>-<settings hash[:16]>/`` — the trained tokenizer;
- ``datasets/<corpus sha256[:16]>-<settings hash[:16]>/`` — ``meta.json`` + ``<split>.bin``.

A directory is built under a temporary name and renamed into place when complete,
so a failure or an interrupted run never leaves a partial cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmos.sdk import DATASET, MODEL, TOKENIZER, ValidationError

from llmos_data.clean import Deduplicator, Stats, clean_text, doc_hash, is_validation
from llmos_data.config import CorpusConfig
from llmos_data.dataset import META, PackedDataset
from llmos_data.sources import (
    corpus_sha256,
    iter_file,
    iter_python_file,
    resolve_sources,
    stdlib_files,
    stdlib_fingerprint,
)

SPLITS = ("train", "validation", "test")
_LEN = struct.Struct("<I")
_FORMAT_VERSION = 1

ProgressFactory = Callable[..., Any]


def _settings_hash(cfg: CorpusConfig, fields: set[str]) -> str:
    data = {k: v for k, v in cfg.model_dump(mode="json").items() if k in fields}
    data["_v"] = _FORMAT_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


_SOURCE_FIELDS = {"format", "text_field", "split_paragraphs", "reader_config", "stdlib_parts"}
_CLEAN_FIELDS = _SOURCE_FIELDS | {
    "max_bytes", "max_documents", "normalize", "clean_whitespace", "min_chars", "max_chars",
    "dedup", "near_dedup", "near_dedup_threshold", "shingle_size", "num_perm", "validation_fraction",
    "test_fraction",
}
_TOKENIZER_FIELDS = _CLEAN_FIELDS | {
    "vocab_size", "min_frequency", "tokenizer_train_bytes", "bos_token", "eos_token", "pad_token",
    "tokenizer_trainer", "tokenizer_trainer_config", "add_bos",
}
_DATASET_FIELDS = _TOKENIZER_FIELDS | {"block_size"}


def _reader_names() -> list[str]:
    from llmos.sdk import get_manager

    return [e.name for e in get_manager().extensions("data_readers")]


def _provenance(readers: list[str]) -> str:
    """Which plugin (and version) provides each reader: part of the cache key, so that
    another reader of the same name never reuses a cached corpus. llmos-data's own
    readers are covered by _FORMAT_VERSION and left out (cache keys stay as they were)."""
    from llmos.sdk import get_manager

    manager = get_manager()
    out = []
    for name in readers:
        ext = manager.get_extension("data_readers", name)
        if ext.plugin != "llmos-data":
            info = manager.plugins.get(ext.plugin)
            out.append(f"{name}={ext.plugin}@{getattr(info, 'version', None)}")
    return ",".join(out)


def _null_progress(**_: Any) -> Any:
    from llmos.sdk import NullProgress

    return NullProgress()


def build_dataset(
    cfg: CorpusConfig,
    *,
    cache_root: Path | None,
    workdir: Path,
    progress: ProgressFactory | None = None,
) -> PackedDataset:
    """Build (or reuse from the cache) the packed dataset described by ``cfg``.

    :param cache_root: ``$LLMOS_HOME/cache`` to reuse and store results, or ``None`` to
        build into ``workdir`` without caching (also when ``cfg.cache`` is false).
    :param workdir: where an uncached dataset is written.
    :param progress: ``progress(total=, description=, unit=)`` → a progress reporter.
    :raises NotFoundError: a source path does not exist.
    :raises ValidationError: bad input (no text left after cleaning, empty split...).
    """
    progress = progress or _null_progress
    if not cfg.cache:
        cache_root = None
    if cfg.paths:
        files = resolve_sources(cfg.paths, cfg.format, readers=_reader_names())
        readers = sorted({sf.format for sf in files})
        corpus = corpus_sha256(files, f"{cfg.format}|{cfg.text_field}|{cfg.split_paragraphs}|"
                                      f"{json.dumps(cfg.reader_config, sort_keys=True)}|{_provenance(readers)}")
    else:
        files = stdlib_files()
        corpus = corpus_sha256(files, f"{stdlib_fingerprint()}|{sorted(cfg.stdlib_parts)}")
    if cfg.tokenizer:
        tok_path = Path(cfg.tokenizer).expanduser()
        if not (tok_path / "tokenizer.json").is_file():
            raise ValidationError(
                f"tokenizer {cfg.tokenizer!r} has no tokenizer.json: point 'tokenizer' at a tokenizer directory"
            )
        tok_hash = hashlib.sha256((tok_path / "tokenizer.json").read_bytes()).hexdigest()
    else:
        tok_path, tok_hash = None, _settings_hash(cfg, _TOKENIZER_FIELDS)
    ds_hash = hashlib.sha256((_settings_hash(cfg, _DATASET_FIELDS) + tok_hash).encode()).hexdigest()
    key = f"{corpus[:16]}-{ds_hash[:16]}"

    if cache_root is not None:
        final = cache_root / "datasets" / key
        if (final / META).is_file():
            ds = PackedDataset(final)
            if ds.tokenizer_dir.joinpath("tokenizer.json").is_file():
                ds.meta["cached"] = True
                return ds
            shutil.rmtree(final, ignore_errors=True)  # its tokenizer was removed: rebuild
        parent = final.parent
    else:
        final = workdir / "dataset"
        if final.exists():
            shutil.rmtree(final)
        parent = workdir
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    try:
        stats = Stats()
        _spool_documents(cfg, files, tmp, stats, progress)
        if stats.documents_kept == 0:
            raise ValidationError(
                f"no documents left after cleaning ({stats.documents_read} read, dropped: "
                f"{dict(stats.dropped) or 'none'}): lower min_chars or check the input files"
            )
        if cfg.validation_fraction > 0 and stats.split_documents["validation"] == 0:
            raise ValidationError(
                f"the validation split is empty ({stats.documents_kept} documents kept): "
                f"raise validation_fraction or add more documents"
            )
        if cfg.test_fraction > 0 and stats.split_documents["test"] == 0:
            raise ValidationError(
                f"the test split is empty ({stats.documents_kept} documents kept): raise test_fraction or add "
                f"more documents"
            )
        if stats.split_documents["train"] == 0:
            raise ValidationError("the train split is empty: lower validation_fraction or add more documents")

        # tok_src: where the tokenizer is now; tokenizer_dir: where the finished dataset finds it
        if tok_path is not None:
            tok_src = tokenizer_dir = tok_path.resolve()
        elif cache_root is not None:
            tok_key = f"{corpus[:16]}-{tok_hash[:16]}"
            tok_src = tokenizer_dir = _cached_tokenizer(cfg, cache_root / "tokenizers" / tok_key, tmp, progress)
        else:
            tok_src, tokenizer_dir = tmp / "tokenizer", final / "tokenizer"
            _train_tokenizer(cfg, tmp, tok_src, progress)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tok_src / "tokenizer.json"))
        specials = {}
        for name, token in (("pad", cfg.pad_token), ("bos", cfg.bos_token), ("eos", cfg.eos_token)):
            tid = tok.token_to_id(token)
            if tid is not None:
                specials[name] = tid
        if "eos" not in specials:
            raise ValidationError(
                f"the tokenizer has no end-of-sequence token {cfg.eos_token!r}: set eos_token to one of its special tokens"
            )
        vocab_size = tok.get_vocab_size(with_added_tokens=True)
        dtype = "uint16" if vocab_size <= 65536 else "uint32"
        blocks: dict[str, int] = {}
        tokens: dict[str, int] = {}
        for split in SPLITS:
            n_tok, n_blk = _pack(tok, tmp / f"{split}.docs", tmp / f"{split}.bin", specials["eos"], cfg.block_size,
                                 dtype, stats.split_documents[split], split, progress)
            tokens[split], blocks[split] = n_tok, n_blk
            (tmp / f"{split}.docs").unlink()
        if blocks["train"] == 0:
            raise ValidationError(
                f"the train split has {tokens['train']} tokens, fewer than one block of {cfg.block_size}: "
                f"lower block_size or add text"
            )
        if cfg.validation_fraction > 0 and blocks["validation"] == 0:
            raise ValidationError(
                f"the validation split has {tokens['validation']} tokens, fewer than one block of "
                f"{cfg.block_size}: lower block_size, raise validation_fraction or add text"
            )
        out_stats = stats.to_dict()
        out_stats.update(
            tokens=tokens,
            blocks=blocks,
            tokens_dropped=sum(tokens[s] - blocks[s] * cfg.block_size for s in SPLITS),
            vocab_size=vocab_size,
        )
        meta = {
            "format_version": _FORMAT_VERSION,
            "key": key,
            "corpus_sha256": corpus,
            "source": [str(p) for p in cfg.paths] or f"python-stdlib ({stdlib_fingerprint()}, PSF-2.0)",
            "vocab_size": vocab_size,
            "block_size": cfg.block_size,
            "dtype": dtype,
            "blocks": blocks,
            "tokenizer_dir": str(tokenizer_dir),
            "special_tokens": specials,
            "stats": out_stats,
            "settings": cfg.model_dump(mode="json"),
        }
        with open(tmp / META, "w") as fh:
            json.dump(meta, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same entry first: use theirs
            if not (final / META).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PackedDataset(final)


# ---------------------------------------------------------------------------
# pass 1: read, clean, filter, dedup, split → spool files
# ---------------------------------------------------------------------------


def _documents(cfg: CorpusConfig, files: list) -> Iterator[tuple[str, int]]:
    """(document, bytes of its source consumed so far in this file) pairs."""
    for sf in files:
        if sf.format == "python":
            for doc in iter_python_file(sf.path, cfg.stdlib_parts):
                yield doc, 0
            yield "", sf.size  # marks the end of a file for progress
        else:
            rc = cfg.reader_config if sf.format == cfg.format else None
            for doc in iter_file(sf, text_field=cfg.text_field, split_paragraphs=cfg.split_paragraphs,
                                 reader_config=rc):
                yield doc, len(doc.encode("utf-8"))


def _spool_documents(cfg: CorpusConfig, files: list, tmp: Path, stats: Stats, progress: ProgressFactory) -> None:
    dedup = Deduplicator(
        exact=cfg.dedup,
        near=cfg.near_dedup,
        threshold=cfg.near_dedup_threshold,
        num_perm=cfg.num_perm,
        shingle_size=cfg.shingle_size,
    )
    outs = {s: open(tmp / f"{s}.docs", "wb") for s in SPLITS}
    total = sum(sf.size for sf in files)
    pending = 0
    try:
        with progress(total=total, description="reading corpus", unit="B") as bar:
            for raw, consumed in _documents(cfg, files):
                pending += consumed
                if pending >= 1 << 20:
                    bar.update(pending, documents=stats.documents_kept)
                    pending = 0
                if not raw:
                    continue
                stats.documents_read += 1
                stats.bytes_read += len(raw.encode("utf-8")) if consumed == 0 else consumed
                text = clean_text(raw, normalize=cfg.normalize, whitespace=cfg.clean_whitespace)
                reason = None
                if len(text) < cfg.min_chars:
                    reason = "empty" if not text else "too_short"
                elif cfg.max_chars is not None and len(text) > cfg.max_chars:
                    reason = "too_long"
                digest = doc_hash(text)
                if reason is None:
                    reason = dedup.check(text, digest)
                if reason is not None:
                    stats.dropped[reason] += 1
                    continue
                data = text.encode("utf-8")
                if is_validation(digest, cfg.validation_fraction):
                    split = "validation"
                elif cfg.test_fraction and is_validation(digest, cfg.validation_fraction + cfg.test_fraction):
                    split = "test"  # held out: selection uses validation, reports use test
                else:
                    split = "train"
                outs[split].write(_LEN.pack(len(data)))
                outs[split].write(data)
                stats.documents_kept += 1
                stats.bytes_kept += len(data)
                stats.split_documents[split] += 1
                stats.split_bytes[split] += len(data)
                if (cfg.max_documents is not None and stats.documents_kept >= cfg.max_documents) or (
                    cfg.max_bytes is not None and stats.bytes_kept >= cfg.max_bytes
                ):
                    stats.stopped_at_limit = True
                    break
            bar.update(pending)
    finally:
        for fh in outs.values():
            fh.close()
    for split in SPLITS:
        stats.split_documents.setdefault(split, 0)
        stats.split_bytes.setdefault(split, 0)


def read_spool(path: Path, max_bytes: int | None = None) -> Iterator[str]:
    """Documents of a spool file (``<uint32 length><utf-8 bytes>`` records)."""
    seen = 0
    with open(path, "rb", buffering=1 << 20) as fh:
        while header := fh.read(_LEN.size):
            (n,) = _LEN.unpack(header)
            data = fh.read(n)
            yield data.decode("utf-8")
            seen += n
            if max_bytes is not None and seen >= max_bytes:
                return


# ---------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------


def _train_tokenizer(cfg: CorpusConfig, tmp: Path, out_dir: Path, progress: ProgressFactory) -> None:
    """Train the tokenizer named ``cfg.tokenizer_trainer`` (``llmos_register_tokenizer_trainers``:
    ``factory(texts, config) -> PreTrainedTokenizerFast``) and save it to ``out_dir``."""
    from llmos.sdk import get_manager

    ext = get_manager().get_extension("tokenizer_trainers", cfg.tokenizer_trainer)

    def counted(docs: Iterator[str], bar: Any) -> Iterator[str]:
        n = 0
        for doc in docs:
            n += 1
            if n % 1000 == 0:
                bar.update(1000)
            yield doc
        bar.update(n % 1000)

    with progress(total=None, description=f"training {cfg.tokenizer_trainer} tokenizer ({cfg.vocab_size} tokens)",
                  unit="doc") as bar:
        tok = ext.load_factory()(counted(read_spool(tmp / "train.docs", cfg.tokenizer_train_bytes), bar),
                                 ext.validate_config(cfg.tokenizer_trainer_config))
    if not hasattr(tok, "save_pretrained"):
        raise ValidationError(
            f"tokenizer trainer {cfg.tokenizer_trainer!r} (plugin {ext.plugin}) returned {type(tok).__name__}, "
            f"not a transformers PreTrainedTokenizerFast"
        )
    tok.model_max_length = max(cfg.block_size, 1024)
    if cfg.add_bos:
        _prepend_bos(tok, cfg.bos_token)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out_dir))
    if not (out_dir / "tokenizer.json").is_file():
        raise ValidationError(f"tokenizer trainer {cfg.tokenizer_trainer!r} saved no tokenizer.json (not a fast tokenizer)")


def _prepend_bos(tok: Any, bos: str) -> None:
    """Make ``tok`` start every encoded text with ``bos`` (its post-processor, saved in
    tokenizer.json): the packed documents and any prompt (``llmos generate``, the server)
    then begin the same way."""
    from tokenizers.processors import TemplateProcessing

    bos_id = tok.convert_tokens_to_ids(bos)
    if bos_id is None or bos_id == getattr(tok, "unk_token_id", object()):
        raise ValidationError(f"the tokenizer has no beginning-of-sequence token {bos!r}: set bos_token or add_bos = false")
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, bos_id)])


def _cached_tokenizer(cfg: CorpusConfig, final: Path, tmp: Path, progress: ProgressFactory) -> Path:
    if (final / "tokenizer.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        _train_tokenizer(cfg, tmp, build, progress)
        try:
            os.replace(build, final)
        except OSError:
            if not (final / "tokenizer.json").is_file():
                raise
            shutil.rmtree(build, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return final


# ---------------------------------------------------------------------------
# pass 2: tokenize and pack
# ---------------------------------------------------------------------------


def _batches(docs: Iterator[str], max_docs: int = 256, max_chars: int = 1 << 20) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if len(batch) >= max_docs or size >= max_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _pack(tok: Any, docs_path: Path, out_path: Path, eos: int, block_size: int, dtype: str, n_docs: int,
          split: str, progress: ProgressFactory) -> tuple[int, int]:
    """Tokenize the documents of one split as the tokenizer encodes any text (with its
    special-token template: ``<bos> doc`` for the tokenizers trained here) and append
    them, each followed by ``eos``, to ``out_path``; cut the tail that does not fill a
    block. Returns (tokens, blocks)."""
    import numpy as np

    n_tokens = 0
    with open(out_path, "wb") as out, progress(total=n_docs, description=f"packing {split}", unit="doc") as bar:
        for batch in _batches(read_spool(docs_path)):
            encodings = tok.encode_batch_fast(batch, add_special_tokens=True) if hasattr(
                tok, "encode_batch_fast") else tok.encode_batch(batch, add_special_tokens=True)
            ids = [e.ids if e.ids[-1:] == [eos] else [*e.ids, eos] for e in encodings]
            lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
            arr = np.empty(int(lengths.sum()), dtype=dtype)
            pos = 0
            for e, n in zip(ids, lengths):
                arr[pos : pos + n] = e
                pos += n
            arr.tofile(out)
            n_tokens += arr.size
            bar.update(len(batch), tokens=n_tokens)
        n_blocks = n_tokens // block_size
        out.truncate(n_blocks * block_size * np.dtype(dtype).itemsize)
        out.flush()
        os.fsync(out.fileno())
    return n_tokens, n_blocks


# ---------------------------------------------------------------------------
# the pipeline step
# ---------------------------------------------------------------------------


class CorpusStep:
    """``data.corpus``: writes ``ctx.artifacts["dataset"]`` (a :class:`PackedDataset`)
    and ``ctx.artifacts["tokenizer"]`` (a ``PreTrainedTokenizerFast``)."""

    def __init__(self, config: CorpusConfig | None = None) -> None:
        self.config = config if config is not None else CorpusConfig()

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos.sdk import home

        cfg = self.config
        stage_id = getattr(ctx.stage, "id", None) or "data"
        model_tok = TOKENIZER.get(ctx) if MODEL.get(ctx) is not None else None
        if cfg.tokenizer is None and model_tok is not None:
            # a data stage after a model (loaded or trained) tokenizes with that model's tokenizer
            tok_dir = Path(ctx.workdir) / stage_id / "model-tokenizer"
            model_tok.save_pretrained(str(tok_dir))
            # its own special tokens (an HF model's eos is not ours: e.g. "</s>", "<|endoftext|>")
            own = {f"{k}_token": getattr(model_tok, f"{k}_token", None) for k in ("bos", "eos", "pad")}
            cfg = cfg.model_copy(update={"tokenizer": str(tok_dir),
                                         **{k: v for k, v in own.items() if isinstance(v, str) and v}})
        ds = build_dataset(
            cfg,
            cache_root=home() / "cache" if cfg.cache else None,
            workdir=Path(ctx.workdir) / stage_id,
            progress=ctx.progress,
        )
        DATASET.set(ctx, ds)
        TOKENIZER.set(ctx, ds.tokenizer())
        s = ds.stats
        summary = {
            "documents_kept": float(s["documents_kept"]),
            "documents_dropped": float(sum(s["documents_dropped"].values())),
            "bytes_kept": float(s["bytes_kept"]),
            "vocab_size": float(ds.vocab_size),
            "train_tokens": float(s["tokens"]["train"]),
            "validation_tokens": float(s["tokens"]["validation"]),
            "train_blocks": float(s["blocks"]["train"]),
            "validation_blocks": float(s["blocks"]["validation"]),
            "test_blocks": float(s["blocks"].get("test", 0)),
            "cached": float(bool(ds.meta.get("cached"))),
        }
        ctx.log_metrics(None, summary, kind="data")
        return summary

    __call__ = run

