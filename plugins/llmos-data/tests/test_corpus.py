"""data.corpus: sources, cleaning, dedup, split, tokenizer cache, packing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmos.errors import NotFoundError, ValidationError
from llmos_data.clean import Deduplicator, MinHasher, clean_text, doc_hash, is_validation, jaccard_estimate
from llmos_data.config import CorpusConfig
from llmos_data.corpus import build_dataset
from llmos_data.dataset import PackedDataset
from llmos_data.sources import detokenize_wikitext, iter_file, resolve_sources

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
    "between old friends who never tire of telling stories about rivers mountains and cities"
).split()


def prose(i: int, n: int = 40) -> str:
    """A distinct, deterministic document (different documents share few shingles)."""
    rng = np.random.default_rng(i)
    return " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=n)).capitalize() + f". Number {i}."


def build(tmp_path: Path, **kw) -> PackedDataset:
    kw.setdefault("vocab_size", 300)
    kw.setdefault("block_size", 16)
    kw.setdefault("validation_fraction", 0.2)
    cfg = CorpusConfig(**kw)
    return build_dataset(cfg, cache_root=tmp_path / "cache", workdir=tmp_path / "work")


def decoded_docs(ds: PackedDataset, split: str) -> list[str]:
    tok = ds.tokenizer()
    ids = np.asarray(ds.split(split)).ravel().tolist()
    text = tok.decode(ids, skip_special_tokens=False)
    return [d for d in text.split(tok.eos_token) if d]


# -- sources --------------------------------------------------------------------


def test_txt_md_jsonl_folder_and_glob(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text(prose(1))
    (src / "sub" / "b.md").write_text("# Title\n\n" + prose(2))
    (src / "c.jsonl").write_text(
        json.dumps({"meta": {"body": prose(3)}}) + "\n\n" + json.dumps({"meta": {"body": prose(4)}}) + "\n"
    )
    (src / "ignored.csv").write_text("x,y\n")
    files = resolve_sources([str(src)])
    assert [(f.path.name, f.format) for f in files] == [("a.txt", "txt"), ("c.jsonl", "jsonl"), ("b.md", "md")]
    assert list(iter_file(files[1], text_field="meta.body")) == [prose(3), prose(4)]
    globbed = resolve_sources([str(src / "**" / "*.md"), str(src / "a.txt"), str(src / "a.txt")])
    assert [f.path.name for f in globbed] == ["b.md", "a.txt"]  # duplicates listed once


def test_wikitext_raw_format(tmp_path):
    raw = (
        " \n = Valkyria Chronicles = \n \n The game @-@ a tactical role @-@ playing game , was released in 2011 . \n"
        " \n = = Gameplay = = \n \n It sold 1 @,@ 000 copies ( in Japan ) . \n"
        " \n = Second Article = \n \n Another text that isn 't short . \n"
    )
    f = tmp_path / "wiki.train.txt"
    f.write_text(raw)
    (sf,) = resolve_sources([str(f)])
    assert sf.format == "wikitext"
    docs = list(iter_file(sf))
    assert len(docs) == 2
    assert docs[0].startswith("Valkyria Chronicles\n")
    assert "The game-a tactical role-playing game, was released in 2011." in docs[0]
    assert "Gameplay\n" in docs[0] and "It sold 1,000 copies (in Japan)." in docs[0]
    assert "Another text that isn't short." in docs[1]
    assert detokenize_wikitext(" = = Heading = = \n") == "Heading\n"


def test_missing_path_is_one_clear_line(tmp_path):
    missing = tmp_path / "nope" / "corpus.txt"
    with pytest.raises(NotFoundError) as err:
        build(tmp_path, paths=[str(missing)])
    msg = str(err.value)
    assert str(missing) in msg and "\n" not in msg and "paths" in msg
    with pytest.raises(NotFoundError, match="matches no file"):
        build(tmp_path, paths=[str(tmp_path / "*.txt")])
    assert not (tmp_path / "cache" / "datasets").exists() or not any((tmp_path / "cache" / "datasets").iterdir())


def test_jsonl_errors_name_file_and_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"text": prose(1)}) + "\n" + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ValidationError, match=r"d\.jsonl:2: record has no field 'text'"):
        build(tmp_path, paths=[str(f)])
    f.write_text("{not json\n")
    with pytest.raises(ValidationError, match=r"d\.jsonl:1: not valid JSON"):
        build(tmp_path, paths=[str(f)])
    # nothing half-built is left in the cache after a failure
    leftovers = list((tmp_path / "cache" / "datasets").iterdir()) if (tmp_path / "cache" / "datasets").exists() else []
    assert leftovers == []


def test_bad_config_is_rejected_with_location():
    from llmos.components import Component

    comp = Component("data", "corpus", "llmos_data.corpus:CorpusStep", config=CorpusConfig, plugin="llmos-data")
    with pytest.raises(ValidationError) as err:
        comp.validate_config({"vocab_size": 10, "validation_fraction": 1.5, "nonsense": 1})
    msg = str(err.value)
    assert "data.corpus.vocab_size" in msg and "data.corpus.validation_fraction" in msg and "nonsense" in msg
    with pytest.raises(ValidationError, match="max_chars"):
        comp.validate_config({"min_chars": 100, "max_chars": 10})


# -- cleaning and dedup ---------------------------------------------------------


def test_clean_text_normalisation_and_whitespace():
    assert clean_text("Cafe\u0301  au \t lait  \n\n\n\nnext\r\n  indented\x00 ") == "Caf\u00e9 au lait\n\nnext\n  indented"
    assert clean_text("\uff21\uff22 \ufb01", normalize="NFKC") == "AB fi"
    assert clean_text("\uff21\uff22", normalize="NFC") == "\uff21\uff22"
    assert clean_text("a  b", whitespace=False) == "a  b"


def test_minhash_estimates_jaccard_and_is_deterministic():
    h = MinHasher(num_perm=128, shingle_size=5)
    a = prose(1, 200)
    near = a.replace("fox", "cat", 1)
    assert np.array_equal(h.signature(a), MinHasher(128, 5).signature(a))
    assert jaccard_estimate(h.signature(a), h.signature(near)) > 0.85
    assert jaccard_estimate(h.signature(a), h.signature(prose(2, 200))) < 0.5
    long_doc = prose(5, 3000)  # the one-permutation regime
    assert jaccard_estimate(h.signature(long_doc), h.signature(long_doc + " and one more")) > 0.9


def test_dedup_exact_near_and_stats(tmp_path):
    base = prose(7, 120)
    docs = [prose(i) for i in range(30)] + [base, base, base.replace("dog", "cat", 1), "tiny"]
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": d}) for d in docs))
    ds = build(tmp_path, paths=[str(f)])
    st = ds.stats
    assert st["documents_read"] == 34
    assert st["documents_dropped"] == {"duplicate": 1, "near_duplicate": 1, "too_short": 1}
    assert st["documents_kept"] == 31
    assert st["documents"]["train"] + st["documents"]["validation"] == 31
    assert st["tokens"]["train"] >= st["blocks"]["train"] * 16
    # without dedup every long-enough document is kept
    ds2 = build(tmp_path, paths=[str(f)], dedup=False, near_dedup=False)
    assert ds2.stats["documents_kept"] == 33 and ds2.stats["documents_dropped"] == {"too_short": 1}


def test_deduplicator_unit():
    d = Deduplicator(threshold=0.8)
    a = prose(1, 100)
    assert d.check(a, doc_hash(a)) is None
    assert d.check(a, doc_hash(a)) == "duplicate"
    b = a + " Extra"
    assert d.check(b, doc_hash(b)) == "near_duplicate"
    c = prose(2, 100)
    assert d.check(c, doc_hash(c)) is None


def test_length_filters(tmp_path):
    f = tmp_path / "d.jsonl"
    docs = [prose(i, n) for i, n in enumerate([3, 40, 40, 40, 400] * 4)]
    f.write_text("\n".join(json.dumps({"text": d}) for d in docs))
    ds = build(tmp_path, paths=[str(f)], min_chars=60, max_chars=1000, validation_fraction=0.3)
    assert ds.stats["documents_dropped"] == {"too_short": 4, "too_long": 4}


# -- split ----------------------------------------------------------------------


def test_split_is_deterministic_by_document_hash(tmp_path):
    docs = [prose(i) for i in range(200)]
    assert sum(is_validation(doc_hash(d), 0.25) for d in docs) in range(30, 71)
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": d}) for d in docs))
    ds = build(tmp_path, paths=[str(f)], validation_fraction=0.25)
    expected_val = {d for d in docs if is_validation(doc_hash(d), 0.25)}
    got_val = set(decoded_docs(ds, "validation"))
    # every whole validation document decoded from the blocks is one the hash chose
    assert got_val and got_val - {d for d in got_val if d not in docs} <= expected_val
    # reversing the file order changes nothing about which documents go where
    g = tmp_path / "e.jsonl"
    g.write_text("\n".join(json.dumps({"text": d}) for d in reversed(docs)))
    ds2 = build(tmp_path, paths=[str(g)], validation_fraction=0.25)
    assert ds2.stats["documents"] == ds.stats["documents"]


def test_empty_validation_split_is_a_clear_error(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text(prose(1, 200))
    with pytest.raises(ValidationError, match="validation split is empty"):
        build(tmp_path, paths=[str(f)], validation_fraction=0.01)


# -- tokenizer cache and packing -------------------------------------------------


def _corpus(tmp_path: Path, n: int = 60) -> Path:
    src = tmp_path / "corpus"
    src.mkdir(exist_ok=True)
    (src / "all.txt").write_text("\n\n".join(prose(i) for i in range(n)))
    return src


def test_tokenizer_and_dataset_cache_reuse(tmp_path):
    src = _corpus(tmp_path)
    ds1 = build(tmp_path, paths=[str(src)], split_paragraphs=True)
    assert not ds1.meta.get("cached")
    tok_json = ds1.tokenizer_dir / "tokenizer.json"
    mtime = tok_json.stat().st_mtime_ns
    assert ds1.tokenizer_dir.parent == tmp_path / "cache" / "tokenizers"
    assert ds1.tokenizer_dir.name.startswith(ds1.corpus_sha256[:16])

    ds2 = build(tmp_path, paths=[str(src)], split_paragraphs=True)
    assert ds2.meta.get("cached") and ds2.path == ds1.path
    # a different block size re-packs but reuses the trained tokenizer
    ds3 = build(tmp_path, paths=[str(src)], split_paragraphs=True, block_size=8)
    assert ds3.path != ds1.path and ds3.tokenizer_dir == ds1.tokenizer_dir
    assert tok_json.stat().st_mtime_ns == mtime
    # a copy of the corpus elsewhere has the same hash: everything is reused
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "all.txt").write_bytes((src / "all.txt").read_bytes())
    assert build(tmp_path, paths=[str(other)], split_paragraphs=True).path == ds1.path
    # changed text → new corpus hash → new tokenizer
    (src / "all.txt").write_text((src / "all.txt").read_text() + "\n\nOne more paragraph about the fox.")
    ds4 = build(tmp_path, paths=[str(src)], split_paragraphs=True)
    assert ds4.corpus_sha256 != ds1.corpus_sha256 and ds4.tokenizer_dir != ds1.tokenizer_dir


def test_memmap_packing_round_trip(tmp_path):
    src = _corpus(tmp_path)
    ds = build(tmp_path, paths=[str(src)], split_paragraphs=True, validation_fraction=0.1)
    train = ds.split("train")
    assert isinstance(train, np.memmap) and train.dtype == np.uint16 and train.ndim == 2
    assert train.shape == (ds.stats["blocks"]["train"], 16)
    assert (ds.path / "train.bin").stat().st_size == train.size * 2
    assert int(train.max()) < ds.vocab_size
    assert not train.flags.writeable
    tok = ds.tokenizer()
    assert tok.eos_token == "<|eos|>" and tok.pad_token == "<|pad|>" and tok.bos_token == "<|bos|>"
    # the blocks are the documents, each as <bos> doc <eos>, cut at a block boundary (issue 15.5:
    # the tokenizer prepends bos to any text, so a prompt starts the way documents do in training)
    docs = [prose(i) for i in range(60)]
    train_docs = [d for d in docs if not is_validation(doc_hash(d), 0.1)]
    stream: list[int] = []
    for d in train_docs:
        stream += [tok.bos_token_id] + tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok("Return the")["input_ids"][0] == tok.bos_token_id
    n = len(stream) // 16 * 16
    assert ds.stats["tokens"]["train"] == len(stream)
    assert np.asarray(train).ravel().tolist() == stream[:n]
    # AutoTokenizer loads the directory too (the artifact convention)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(ds.tokenizer_dir)).encode("the fox") == tok.encode("the fox")
    assert ds.split("test").shape == (0, 16)  # test_fraction = 0: an empty held-out split
    with pytest.raises(NotFoundError, match="no split 'tset'"):
        ds.split("tset")


def test_uncached_build_goes_to_workdir(tmp_path):
    src = _corpus(tmp_path)
    ds = build(tmp_path, paths=[str(src)], split_paragraphs=True, cache=False)
    assert ds.path == tmp_path / "work" / "dataset"
    assert ds.tokenizer_dir == ds.path / "tokenizer" and (ds.tokenizer_dir / "tokenizer.json").is_file()
    assert not (tmp_path / "cache").exists()


def test_default_corpus_is_stdlib_prose(tmp_path):
    ds = build(tmp_path, max_bytes=150_000, vocab_size=512, block_size=64, validation_fraction=0.1)
    assert ds.stats["stopped_at_limit"] and 150_000 <= ds.stats["bytes_kept"] < 200_000
    assert "PSF-2.0" in ds.meta["source"]
    text = ds.tokenizer().decode(np.asarray(ds.split("train")[:20]).ravel())
    assert ">>>" not in text
    words = text.split()
    assert sum(w.isalpha() for w in words) / len(words) > 0.6  # prose, not code


def test_existing_tokenizer_and_document_limit(tmp_path):
    src = _corpus(tmp_path)
    ds1 = build(tmp_path, paths=[str(src)], split_paragraphs=True)
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(json.dumps({"text": prose(100 + i)}) for i in range(50)))
    ds2 = build(tmp_path, paths=[str(other)], tokenizer=str(ds1.tokenizer_dir), max_documents=30)
    assert ds2.tokenizer_dir == ds1.tokenizer_dir.resolve() and ds2.vocab_size == ds1.vocab_size
    assert ds2.stats["documents_kept"] == 30 and ds2.stats["stopped_at_limit"]
    assert not any(p.name.startswith(ds2.corpus_sha256[:16]) for p in (tmp_path / "cache" / "tokenizers").iterdir())
    with pytest.raises(ValidationError, match="has no tokenizer.json"):
        build(tmp_path, paths=[str(other)], tokenizer=str(tmp_path))
