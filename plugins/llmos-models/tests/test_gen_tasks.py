"""Generation tasks (issue 16.1): batched greedy generation for a local task file's
prompts, scored by registered generation metrics (exact match with lm-eval's
normalisation options, corpus BLEU and chrF as sacrebleu computes them); the shipped
stdlib-completion task through `llmos evaluate` (recorded as version metrics), the
model.evaluate stage, and lm-eval-harness's own evaluator on the same YAML."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROMPTS = ["Return the number of", "Raise an error if the file", "This module provides", "The socket is closed",
           "Item 3 of", "Return a new list with the"]


def _gen_task(tmp_path: Path, docs: list[dict], metrics: str = "  - metric: exact_match\n", until: str = '["."]',
              extra: str = "") -> Path:
    data = tmp_path / "gen.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    yml = tmp_path / "gen.yaml"
    yml.write_text(f"""task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: {until}
  max_gen_toks: 8
{extra}metric_list:
{metrics}metadata:
  version: 3.1
""")
    return yml


def test_bleu_and_chrf_against_hand_computed_values() -> None:
    from llmos_models.gen_metrics import bleu_metric, chrf_metric

    bleu = bleu_metric()
    assert bleu(["a b c d e f"], ["a b c d e f"]) == pytest.approx(100.0)
    # 6 tokens, one wrong at the end: precisions 5/6, 4/5, 3/4, 2/3, no brevity penalty
    assert bleu(["a b c d e x"], ["a b c d e f"]) == pytest.approx(100 * (5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25)
    # a correct but short output: precisions 1, brevity penalty exp(1 - 6/4)
    assert bleu(["a b c d"], ["a b c d e f"]) == pytest.approx(100 * math.exp(1 - 6 / 4))
    # corpus level: counts are summed over sentences before the geometric mean (not a mean of sentence BLEUs)
    two = bleu(["a b c d e x", "a b c d e f"], ["a b c d e f", "a b c d e f"])
    assert two == pytest.approx(100 * (11 / 12 * 9 / 10 * 7 / 8 * 5 / 6) ** 0.25)
    assert bleu(["the cat sat."], ["the cat sat."]) == pytest.approx(100.0)  # 13a splits the period off: 4 tokens
    assert bleu(["the cat."], ["the cat."]) == 0.0  # 3 tokens have no 4-gram: BLEU-4 is 0, as in sacrebleu
    chrf = chrf_metric()
    assert chrf(["abc"], ["abc"]) == pytest.approx(100.0) and chrf(["xyz"], ["abc"]) == pytest.approx(0.0)
    assert 0 < chrf(["the cat sat"], ["the cat sits"]) < 100


def test_exact_match_normalisation_options() -> None:
    from llmos_models.gen_metrics import ExactMatchConfig, exact_match_metric

    preds, refs = [" Items in the list", "the FILE!", "version 3", "x"], ["items in the list", "the file", "version 4", "y"]
    assert exact_match_metric()(preds, refs) == 0
    assert exact_match_metric(ExactMatchConfig(regexes_to_ignore=[r"^\s+"], ignore_case=True))(preds, refs) == 0.25
    everything = ExactMatchConfig(regexes_to_ignore=[r"^\s+"], ignore_case=True, ignore_punctuation=True,
                                  ignore_numbers=True)
    assert exact_match_metric(everything)(preds, refs) == 0.75
    with pytest.raises(ValueError, match="not a regular expression"):
        ExactMatchConfig(regexes_to_ignore=["("])


def test_batched_generation_equals_one_by_one(trained, tokenizer) -> None:
    from llmos_models.generate import GenerationSettings, generate, generate_batch

    settings = GenerationSettings(max_new_tokens=10, stop=[".", "\n"])
    one = [generate(trained, tokenizer, p, settings) for p in PROMPTS]
    seen = []

    class Bar:
        def update(self, n):
            seen.append(n)

    batched = generate_batch(trained, tokenizer, PROMPTS, settings, batch_size=4, progress=Bar())
    assert [c.text for c in batched] == [c.text for c in one]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in one]
    assert seen == [4, 2]
    assert all("." not in c.text and c.completion_tokens <= 10 for c in batched)


def test_generation_task_scores_through_registered_metrics(standard_plugins, trained, tokenizer, tmp_path) -> None:
    from llmos.errors import ValidationError
    from llmos_models.generate import GenerationSettings, generate_batch
    from llmos_models.tasks import run_tasks

    manager = standard_plugins("llmos-models")
    assert {e.name for e in manager.extensions("eval_tasks")} >= {"generation", "stdlib-completion"}
    assert {e.name for e in manager.extensions("eval_metrics")} >= {"exact_match", "bleu", "chrf"}
    outs = generate_batch(trained, tokenizer, PROMPTS[:4], GenerationSettings(max_new_tokens=8, stop=["."]))
    # the model's own outputs as two references, two wrong ones: exact match 0.5 exactly
    docs = [{"prompt": p, "target": o.text if i < 2 else "zebra"} for i, (p, o) in enumerate(zip(PROMPTS, outs))]
    metrics = "  - metric: exact_match\n  - metric: bleu\n"
    yml = _gen_task(tmp_path, docs, metrics)
    out = run_tasks([{"name": "generation", "path": str(yml), "batch_size": 3}], trained, tokenizer, manager=manager)
    assert out["task.tiny_gen.v3.1.exact_match"] == 0.5 and out["task.tiny_gen.v3.1.n"] == 4
    from llmos_models.gen_metrics import bleu_metric

    assert out["task.tiny_gen.v3.1.bleu"] == pytest.approx(bleu_metric()([o.text for o in outs],
                                                                          [d["target"] for d in docs]))
    bad = [("  - metric: acc\n", "metric 'acc' scores multiple-choice outputs, not this task's generations"),
           ("  - metric: exact_match\n    ignore_case: maybe\n", "metric 'exact_match'"),
           ("  - metric: exact_match\n    regexes_to_ignore: ['(']\n", "not a regular expression"),
           ("  - metric: nope\n", "nope")]
    for metric, words in bad:
        with pytest.raises(Exception, match=words):
            run_tasks([{"name": "generation", "path": str(_gen_task(tmp_path, docs, metric))}], trained, tokenizer,
                      manager=manager)
    with pytest.raises(ValidationError, match="decode greedily"):
        run_tasks([{"name": "generation", "path": str(_gen_task(tmp_path, docs, extra="  do_sample: true\n"))}],
                  trained, tokenizer, manager=manager)
    with pytest.raises(ValidationError, match=r"document 2: doc_to_target gave empty text .* it has: answer, prompt"):
        run_tasks([{"name": "generation", "path": str(_gen_task(tmp_path, [docs[0], {"prompt": "x", "answer": "y"}]))}],
                  trained, tokenizer, manager=manager)
    with pytest.raises(ValidationError, match="a generation task: run it as"):
        run_tasks([{"name": "multiple-choice", "path": str(yml)}], trained, tokenizer, manager=manager)


def test_model_evaluate_stage_runs_the_shipped_generation_task(standard_plugins, trained, tokenizer, dataset,
                                                               tmp_path) -> None:
    from llmos.context import RunContext
    from llmos_models.config import EvaluateConfig
    from llmos_models.evaluate import EvaluateStep

    standard_plugins("llmos-models", "llmos-data")
    bars = []

    class Bar:
        def __init__(self, total, description, unit):
            self.total, self.description, self.done = total, description, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, n=1, **kw):
            self.done += n

    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path / "run", seed=1)
    ctx._progress_factory = lambda total, description, unit: Bar(total, description, unit)  # the runner's display
    ctx._metric_writer = lambda *a: None
    ctx.artifacts.update(model=trained, dataset=dataset, tokenizer=tokenizer)
    cfg = EvaluateConfig(max_blocks=4, speed_tokens=2, prompts=[], quiet=True,
                         tasks=[{"name": "stdlib-completion", "limit": 6, "batch_size": 4}])
    m = EvaluateStep(cfg).run(ctx)
    assert m["task.stdlib_completion.v1.0.n"] == 6
    assert {"task.stdlib_completion.v1.0.exact_match", "task.stdlib_completion.v1.0.bleu",
            "task.stdlib_completion.v1.0.chrf"} <= set(m)
    assert 0 <= m["task.stdlib_completion.v1.0.bleu"] <= 100
    task_bar = [b for b in bars if b.description == "task stdlib_completion.v1.0"]
    assert len(task_bar) == 1 and task_bar[0].total == task_bar[0].done == 6


def test_llmos_evaluate_cli_records_version_metrics(model_dir, trained, tokenizer, tmp_path) -> None:
    """A real `llmos evaluate` process on a registered tiny model: the shipped task's
    results are printed and become metrics of the version, named with task and version."""
    from llmos.registry import open_registry
    from llmos_models.gen_tasks import GenerationTask, StdlibCompletionConfig

    home = tmp_path / "home"
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-models,llmos-registry", OMP_NUM_THREADS="1")
    env.pop("LLMOS_DATABASE_URL", None)
    llmos = [sys.executable, "-m", "llmos"]
    r = subprocess.run([*llmos, "model", "register", "tiny", str(model_dir)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*llmos, "evaluate", "tiny:1", "--task", "stdlib-completion", "--limit", "5", "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["recorded"] == "tiny:1" and out["metrics"]["task.stdlib_completion.v1.0.n"] == 5
    task = GenerationTask(StdlibCompletionConfig(limit=5))
    want = task.evaluate(trained, tokenizer)
    for metric in ("exact_match", "bleu", "chrf"):
        assert out["metrics"][f"task.stdlib_completion.v1.0.{metric}"] == pytest.approx(want[metric])
    version = open_registry(home=home, url=f"sqlite:///{home / 'llmos.db'}").resolve("tiny:1")
    assert version.metrics["task.stdlib_completion.v1.0.bleu"] == pytest.approx(want["bleu"])
    r = subprocess.run([*llmos, "evaluate", "tiny:1"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("Error: give a task") and len(r.stderr.strip().splitlines()) == 1


def test_lm_eval_harness_agrees_on_the_shipped_generation_task(trained, tokenizer, standard_plugins, tmp_path,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import lm_eval
    from lm_eval.tasks import TaskManager

    from llmos_models.gen_tasks import STDLIB_COMPLETION, GenerationTask, StdlibCompletionConfig
    from llmos_models.harness import LlmosLM

    standard_plugins("llmos-models")
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    # lm-eval resolves data_files from its cwd: give it an absolute path to the shipped data
    (task_dir / "stdlib_completion.yaml").write_text(STDLIB_COMPLETION.read_text().replace(
        "test: test.jsonl", f"test: {STDLIB_COMPLETION.parent / 'test.jsonl'}"))
    results = lm_eval.simple_evaluate(model=LlmosLM(model=trained, tokenizer=tokenizer), tasks=["stdlib_completion"],
                                      task_manager=TaskManager(include_path=str(task_dir)), num_fewshot=0, limit=8)
    got = results["results"]["stdlib_completion"]
    ours = GenerationTask(StdlibCompletionConfig(limit=8, batch_size=3)).evaluate(trained, tokenizer)
    assert got["exact_match,none"] == pytest.approx(ours["exact_match"])
    assert got["bleu,none"] == pytest.approx(ours["bleu"]) and got["chrf,none"] == pytest.approx(ours["chrf"])
