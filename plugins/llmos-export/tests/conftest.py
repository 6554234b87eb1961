"""Fixtures: a tiny Llama (grouped-query attention) with a BPE tokenizer trained on
text on this machine, and a registry holding it as ``tiny:1``."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    from llmos_models.io import save_model

    torch.set_num_threads(1)
    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n".join((lib / m).read_text(encoding="utf-8") for m in ("textwrap.py", "string.py", "shlex.py"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=384, special_tokens=["<pad>", "<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    return save_model(model, hf, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def registry(llmos_home: Path, tiny_model_dir: Path):
    from llmos.registry import open_registry

    reg = open_registry()
    reg.register_version("tiny", tiny_model_dir, description="tiny test model")
    return reg
