"""Evaluation beyond perplexity: bits per byte, the held-out test split, multiple-choice
tasks in lm-eval-harness's format from local files, the eval-task/metric extension
points, and lm-eval-harness's own evaluator running an llmos model."""

from __future__ import annotations

import json
import math
import os

import pytest

from llmos import hookimpl


def _task(tmp_path, name="tiny_mc", version="2.0", docs=None):
    """A local lm-eval task: YAML + JSON Lines (absolute path, so lm-eval finds it from any cwd)."""
    docs = docs or [
        {"context": "Return the number of", "choices": ["items in the list.", "zebra quantum fjord.", "the the the"],
         "gold": 0},
        {"context": "Raise an error if the file", "choices": ["purple elephant.", "does not exist.", "of of of"],
         "gold": 1},
        {"context": "This module provides", "choices": ["banana spaceship.", "xylophone.",
                                                        "functions to read and write files."], "gold": 2},
        {"context": "The socket is closed when", "choices": ["the object is deleted.", "giraffe."], "gold": 0},
    ]
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    yml = tmp_path / f"{name}.yaml"
    yml.write_text(f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: {version}
""")
    return yml


def test_bits_per_byte_by_hand(trained, tokenizer, dataset):
    from llmos_models.evaluate import bits_per_byte, perplexity

    blocks = dataset.split("validation")
    loss, _ = perplexity(trained, blocks, 8)
    n_bytes = sum(len(tokenizer.decode(list(map(int, b[1:])), skip_special_tokens=True).encode()) for b in blocks)
    n_tokens = blocks.shape[0] * (blocks.shape[1] - 1)
    assert bits_per_byte(loss, blocks, tokenizer) == pytest.approx(loss * n_tokens / n_bytes / math.log(2))
    assert 0 < bits_per_byte(loss, blocks, tokenizer) < 8 * loss  # a byte holds more than a token's bits


def test_model_evaluate_reports_bpb_and_the_held_out_test_split(standard_plugins, trained, tokenizer, tmp_path):
    from llmos.context import RunContext
    from llmos_data.config import CorpusConfig
    from llmos_data.corpus import build_dataset
    from llmos_models.config import EvaluateConfig
    from llmos_models.evaluate import EvaluateStep

    SENTENCES = ["Return the number of items in the list.", "The default value is used when no argument is given.",
                 "This module provides functions to read and write files.", "Raise an error if the file does not exist.",
                 "Return a new list with the items sorted.", "The socket is closed when the object is deleted."]
    standard_plugins("llmos-models", "llmos-data")  # corpus files are read by llmos-data's readers
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps({"text": f"{SENTENCES[i % 6]} {SENTENCES[(i * 5 + 1) % 6]} Item {i}."})
                             for i in range(160)))
    ds = build_dataset(CorpusConfig(paths=[str(src)], tokenizer=str(tokenizer_dir(tokenizer, tmp_path)),
                                    block_size=32, validation_fraction=0.15, test_fraction=0.15, near_dedup=False),
                       cache_root=None, workdir=tmp_path / "work")
    assert ds.n_blocks("test") > 0 and ds.n_blocks("validation") > 0
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path / "run", seed=1)
    ctx._metric_writer = lambda *a: None
    ctx.artifacts.update(model=trained, dataset=ds, tokenizer=tokenizer)
    cfg = EvaluateConfig(max_blocks=8, speed_tokens=2, prompts=[], quiet=True, tasks=["stdlib-docstrings"])
    m = EvaluateStep(cfg).run(ctx)
    assert {"val_loss", "val_ppl", "val_bpb", "test_loss", "test_ppl", "test_bpb"} <= set(m)
    assert m["test_ppl"] != m["val_ppl"] and m["test_bpb"] > 0
    acc = m["task.stdlib_docstrings.v1.0.acc"]
    assert 0 <= acc <= 1 and m["task.stdlib_docstrings.v1.0.n"] >= 100


def tokenizer_dir(tokenizer, tmp_path):
    d = tmp_path / "tok"
    tokenizer.save_pretrained(str(d))
    return d


def test_llmos_register_eval_tasks(standard_plugins, trained, tokenizer, tmp_path):
    """The standard tasks come through the hook; a plugin's own task runs the same way."""
    from pydantic import BaseModel

    from llmos_models.tasks import run_tasks

    class OneConfig(BaseModel):
        answer: float = 0.5

    class OneTask:
        name, version, key = "one", "3", "one.v3"

        def __init__(self, config):
            self.config = config

        def evaluate(self, model, tokenizer, **kw):
            return {"score": self.config.answer}

    class Plugin:
        @hookimpl
        def llmos_register_eval_tasks(self, register):
            register("one", lambda cfg: OneTask(cfg), config=OneConfig, description="a constant")

    manager = standard_plugins("llmos-models")
    assert {e.name for e in manager.extensions("eval_tasks")} >= {"multiple-choice", "stdlib-docstrings"}
    manager.register(Plugin(), name="test-evals")
    yml = _task(tmp_path)
    out = run_tasks([{"name": "one", "answer": 0.25}, {"name": "multiple-choice", "path": str(yml)}],
                    trained, tokenizer, manager=manager)
    assert out["task.one.v3.score"] == 0.25
    assert set(out) >= {"task.tiny_mc.v2.0.acc", "task.tiny_mc.v2.0.acc_norm", "task.tiny_mc.v2.0.n"}
    assert out["task.tiny_mc.v2.0.n"] == 4
    from llmos.errors import NotFoundError, ValidationError

    with pytest.raises((NotFoundError, ValidationError), match="nope"):
        run_tasks(["nope"], trained, tokenizer, manager=manager)


def test_llmos_register_eval_metrics(standard_plugins, trained, tokenizer, tmp_path):
    """A metric a plugin registers is what a task's metrics setting selects."""
    class Plugin:
        @hookimpl
        def llmos_register_eval_metrics(self, register):
            register("picks-last", lambda cfg: (lambda lls, choices, gold: float(gold == len(choices) - 1)),
                     description="gold is the last choice")

    manager = standard_plugins("llmos-models")
    assert {e.name for e in manager.extensions("eval_metrics")} >= {"acc", "acc_norm"}
    manager.register(Plugin(), name="test-metrics")
    from llmos_models.tasks import MultipleChoiceConfig, MultipleChoiceTask

    task = MultipleChoiceTask(MultipleChoiceConfig(path=str(_task(tmp_path)), metrics=["picks-last", "acc"]))
    out = task.evaluate(trained, tokenizer, manager=manager)
    assert out["picks-last"] == pytest.approx(1 / 4) and 0 <= out["acc"] <= 1


def test_mc_scoring_matches_hand_computed_log_likelihoods(trained, tokenizer, standard_plugins, tmp_path):
    import torch

    from llmos_models.harness import loglikelihood
    from llmos_models.tasks import MultipleChoiceConfig, MultipleChoiceTask

    manager = standard_plugins("llmos-models")
    context, cont = "Return the number of", " items in the list."
    (ll, greedy), = loglikelihood(trained, tokenizer, [(context, cont)])
    bos = [tokenizer.bos_token_id]
    ctx_ids = bos + tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = bos + tokenizer(context + cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(trained(input_ids=torch.tensor([whole[:-1]])).logits[0].float(), -1)
    want = sum(float(logp[i - 1, whole[i]]) for i in range(len(ctx_ids), len(whole)))
    assert ll == pytest.approx(want, abs=1e-4)
    # acc over a task is the share of documents whose gold choice scores highest
    docs = [{"context": context, "choices": ["items in the list.", "zebra zebra."], "gold": 0},
            {"context": context, "choices": ["items in the list.", "zebra zebra."], "gold": 1}]
    task = MultipleChoiceTask(MultipleChoiceConfig(path=str(_task(tmp_path, docs=docs))))
    lls = [x for x, _ in loglikelihood(trained, tokenizer, [(context, " items in the list."), (context, " zebra zebra.")])]
    best = 0 if lls[0] > lls[1] else 1
    assert task.evaluate(trained, tokenizer, manager=manager)["acc"] == 0.5 and best in (0, 1)


def test_lm_eval_harness_evaluates_an_llmos_model_on_a_local_task(trained, tokenizer, standard_plugins, tmp_path,
                                                                   monkeypatch):
    """lm-eval's own evaluator, through the llmos LM adapter, agrees with llmos's task runner."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    from llmos_models.harness import LlmosLM
    from llmos_models.tasks import MultipleChoiceConfig, MultipleChoiceTask

    manager = standard_plugins("llmos-models")
    yml = _task(tmp_path)
    assert get_model("llmos") is LlmosLM  # registered as an lm-eval model type
    results = lm_eval.simple_evaluate(model=LlmosLM(model=trained, tokenizer=tokenizer), tasks=["tiny_mc"],
                                      task_manager=TaskManager(include_path=str(tmp_path)), num_fewshot=0)
    got = results["results"]["tiny_mc"]
    ours = MultipleChoiceTask(MultipleChoiceConfig(path=str(yml))).evaluate(trained, tokenizer, manager=manager)
    assert got["acc,none"] == pytest.approx(ours["acc"]) and got["acc_norm,none"] == pytest.approx(ours["acc_norm"])
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
