"""Generation strategies, streaming, and `llmos generate` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmos_models.generate import GenerationSettings, generate, stream


def test_greedy_is_deterministic(trained, tokenizer):
    s = GenerationSettings(max_new_tokens=20)
    a = generate(trained, tokenizer, "Return the", s)
    b = generate(trained, tokenizer, "Return the", s)
    assert a == b and a.completion_tokens > 0 and a.prompt_tokens == len(tokenizer.encode("Return the"))
    # a trained model writes text of its corpus
    assert any(w in a.text for w in ("list", "number", "items", "default", "file", "the"))


def test_seeded_sampling_is_reproducible(trained, tokenizer):
    s = GenerationSettings(max_new_tokens=24, temperature=1.5, seed=11)
    texts = {generate(trained, tokenizer, "The", s).text for _ in range(2)}
    assert len(texts) == 1
    others = {generate(trained, tokenizer, "The", s.model_copy(update={"seed": k})).text for k in range(5)}
    assert len(others) > 1
    # the caller's RNG state is untouched by a seeded generation
    import torch

    state = torch.random.get_rng_state()
    generate(trained, tokenizer, "The", s)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize(
    "extra",
    [{"top_k": 3}, {"top_p": 0.5}, {"typical_p": 0.5}, {"repetition_penalty": 1.5}],
)
def test_sampling_filters_run_and_are_reproducible(trained, tokenizer, extra):
    s = GenerationSettings(max_new_tokens=12, temperature=0.9, seed=3, **extra)
    a = generate(trained, tokenizer, "This module", s)
    assert a == generate(trained, tokenizer, "This module", s) and a.completion_tokens > 0


def test_top_k_1_equals_greedy(trained, tokenizer):
    greedy = generate(trained, tokenizer, "Raise an", GenerationSettings(max_new_tokens=15))
    k1 = generate(trained, tokenizer, "Raise an", GenerationSettings(max_new_tokens=15, temperature=1.0, top_k=1, seed=0))
    assert greedy.text == k1.text


def test_stop_strings_cut_the_text(trained, tokenizer):
    full = generate(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=30)).text
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    cut = generate(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=30, stop=[stop, "zzzz"]))
    assert cut.text == full[: full.find(stop)] and cut.finish_reason == "stop"
    streamed = "".join(stream(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=30, stop=[stop])))
    assert streamed == cut.text


def test_stream_equals_generate(trained, tokenizer):
    for s in (GenerationSettings(max_new_tokens=25), GenerationSettings(max_new_tokens=25, temperature=1.0, seed=5)):
        pieces = list(stream(trained, tokenizer, "The default", s))
        assert len(pieces) > 1
        assert "".join(pieces) == generate(trained, tokenizer, "The default", s).text


def test_beam_search(trained, tokenizer):
    s = GenerationSettings(max_new_tokens=12, num_beams=4)
    a = generate(trained, tokenizer, "Return a", s)
    assert a == generate(trained, tokenizer, "Return a", s) and a.completion_tokens > 0
    assert "".join(stream(trained, tokenizer, "Return a", s)) == a.text


def test_max_new_tokens_and_length_finish(trained, tokenizer):
    out = generate(trained, tokenizer, "Return", GenerationSettings(max_new_tokens=3, temperature=1.0, seed=1))
    assert out.completion_tokens <= 3


def test_settings_validation():
    with pytest.raises(Exception, match="stop strings must not be empty"):
        GenerationSettings(stop=[""])
    with pytest.raises(Exception):
        GenerationSettings(top_p=1.5)


def _cli(args, env_home, **kw):
    env = dict(os.environ, LLMOS_HOME=str(env_home), LLMOS_PLUGINS="llmos-models,llmos-registry", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "llmos", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kw)


def test_llmos_generate_cli_streams_in_a_real_process(model_dir, trained, tokenizer, tmp_path):
    expected = generate(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=12))
    r = _cli(["generate", str(model_dir), "Return the", "-n", "12"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected.text + "\n"
    # errors are one line, non-zero exit
    r = _cli(["generate", str(tmp_path / "nope"), "hi"], tmp_path)
    assert r.returncode != 0 and r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nope") in r.stderr


def test_generate_command_options(model_dir, trained, tokenizer):
    from click.testing import CliRunner

    from llmos_models.cli import generate as command

    runner = CliRunner()
    r = runner.invoke(command, [str(model_dir), "Return the", "--json", "-n", "12"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    expected = generate(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=12))
    assert data["text"] == expected.text and data["completion_tokens"] == expected.completion_tokens
    assert data["finish_reason"] in ("stop", "length") and data["prompt"] == "Return the"
    args = [str(model_dir), "The", "-n", "8", "-t", "0.9", "--top-p", "0.9", "--top-k", "20", "--typical-p", "0.95",
            "--repetition-penalty", "1.2", "--seed", "4", "--no-stream"]
    a, b = runner.invoke(command, args), runner.invoke(command, args)
    assert a.exit_code == 0 and a.output == b.output
    s = GenerationSettings(max_new_tokens=8, temperature=0.9, top_p=0.9, top_k=20, typical_p=0.95,
                           repetition_penalty=1.2, seed=4)
    assert a.output == generate(trained, tokenizer, "The", s).text + "\n"
    r = runner.invoke(command, [str(model_dir), "Return", "--num-beams", "3", "--stop", ".", "-n", "10"])
    assert r.exit_code == 0 and "." not in r.output
    r = runner.invoke(command, ["--help"])
    assert r.exit_code == 0 and "--typical-p" in r.output and "Examples" in r.output


def test_closing_a_stream_stops_generation(trained, tokenizer):
    s = GenerationSettings(max_new_tokens=300, temperature=1.0, seed=2)
    calls = []
    handle = trained.register_forward_hook(lambda *a: calls.append(1))
    try:
        full = generate(trained, tokenizer, "The", s)
        n_full = len(calls)
        calls.clear()
        gen = stream(trained, tokenizer, "The", s)
        first = next(gen)
        gen.close()  # e.g. the HTTP client disconnected: generation ends at the next token
        n_closed = len(calls)
    finally:
        handle.remove()
    assert first and full.completion_tokens > 40 and n_full >= full.completion_tokens
    # the worker thread may run a few tokens ahead of the consumer, not to the end
    assert n_closed <= 20 < n_full


def test_gpt2_generation_stops_at_its_last_position(make_model, tokenizer, dataset):
    model = make_model("gpt2", dataset.vocab_size, seed=1).eval()  # n_positions = 128
    s = GenerationSettings(max_new_tokens=500, temperature=1.0, seed=0)
    out = generate(model, tokenizer, "Return the", s)
    assert out.prompt_tokens + out.completion_tokens == model.config.n_positions, out
    assert "".join(stream(model, tokenizer, "Return the", s)) == out.text


def test_prompts_start_with_bos_as_training_documents_do(trained, tokenizer):
    from llmos_models.generate import _inputs

    # data.corpus packs <bos> doc <eos>, and its tokenizer prepends bos to any text: a bare
    # prompt starts in distribution (issue 15.5), in generate and in the server (tok(text))
    ids = _inputs(trained, tokenizer, "Return the")
    assert ids[0, 0].item() == tokenizer.bos_token_id
    assert ids[0, 1:].tolist() == tokenizer("Return the", add_special_tokens=False)["input_ids"]
    assert generate(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=4)).prompt_tokens == ids.shape[1]


def test_generation_past_the_training_context_warns_once(trained, tokenizer, tmp_path):
    import warnings

    from llmos_models.generate import PositionWarning
    from llmos_models.io import load_model, save_model

    trained.llmos_train_context = 32  # what optimizer.train records (the block size)
    path = save_model(trained, tokenizer, tmp_path / "m")
    del trained.llmos_train_context
    assert json.loads((path / "llmos.json").read_text())["train_context"] == 32
    model, tok = load_model(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate(model, tok, "Return the", GenerationSettings(max_new_tokens=8))  # inside the context: quiet
        assert not caught
        generate(model, tok, "Return the", GenerationSettings(max_new_tokens=40))
        list(stream(model, tok, "Return the", GenerationSettings(max_new_tokens=40)))
    assert [w.category for w in caught] == [PositionWarning]  # once per model
    assert "past the 32 tokens this model was trained on" in str(caught[0].message)
    r = _cli(["generate", str(path), "Return the", "-n", "40"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning: generating up to position") == 1 and "trained on" in r.stderr
    r = _cli(["generate", str(path), "Return the", "-n", "4", "--device", "gpu"], tmp_path)
    assert r.returncode != 0 and "unknown device 'gpu'" in r.stderr
