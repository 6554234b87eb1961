"""Fixtures: a tiny trained Llama with its BPE tokenizer, built once per session from
text on this machine (Python's standard library sources), and a registry holding it."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

STDLIB_MODULES = ("textwrap.py", "argparse.py", "string.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py",
                  "heapq.py", "calendar.py", "difflib.py")


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n\n".join((lib / m).read_text(encoding="utf-8") for m in STDLIB_MODULES if (lib / m).is_file())
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text[:400_000], encoding="utf-8")
    return path


def build_tiny(vocab: int, *, layers: int = 2, hidden: int = 64, heads: int = 4, kv: int = 4, inter: int = 128,
               seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=128,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A 2-layer Llama (~100k parameters) trained for 60 steps, saved by save_model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from llmos_compress.measure import fit, open_data
    from llmos_models.io import save_model

    torch.set_num_threads(1)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(corpus_file)], trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    model = build_tiny(len(hf))
    data = open_data(corpus_file, hf, 64)
    fit(model, data.split("train"), steps=60, lr=3e-3, batch_size=8, seed=0, warmup_steps=5)
    return save_model(model, hf, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def registry(llmos_home: Path, tiny_model_dir: Path):
    """A fresh registry with the tiny model registered as ``tiny:1``."""
    from llmos.registry import open_registry

    reg = open_registry()
    reg.register_version("tiny", tiny_model_dir, metrics={"val_ppl": 100.0}, description="tiny test model")
    return reg


@pytest.fixture
def cli(standard_plugins, registry):
    """Invoke ``llmos ...`` in-process with only llmos-models and llmos-compress loaded."""
    from click.testing import CliRunner

    from llmos.cli import main

    standard_plugins("llmos-models", "llmos-compress")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def make_tiny():
    """``make_tiny(vocab, layers=..., hidden=..., ...)`` → a fresh tiny Llama."""
    return build_tiny
