"""Generation tasks: generate for each prompt of a local task file, score the texts.

A task is an lm-eval task YAML with ``output_type: generate_until`` whose dataset is
a local JSON Lines file (nothing is downloaded)::

    task: stdlib_completion
    dataset_path: json
    dataset_kwargs: {data_files: {test: test.jsonl}}
    test_split: test
    output_type: generate_until
    doc_to_text: "{{prompt}}"
    doc_to_target: "{{target}}"
    generation_kwargs: {until: ["\\n", "."], max_gen_toks: 24, do_sample: false}
    metric_list:
      - {metric: exact_match, ignore_case: true, regexes_to_ignore: ["^\\\\s+", "\\\\s+$"]}
      - {metric: bleu}
    metadata: {version: 1.0}

Decoding is greedy (``do_sample: true`` is refused: a score must not depend on
luck), at most ``max_gen_toks`` tokens, cut before the first ``until`` string, in
batches (:func:`llmos_models.generate.generate_batch`). The texts are scored by the
metrics registered through ``llmos_register_eval_metrics`` that score generations
(:mod:`llmos_models.gen_metrics`: ``exact_match``, ``bleu``, ``chrf``), each given its
``metric_list`` options. lm-eval-harness runs the same file through
:class:`llmos_models.harness.LlmosLM` and gets the same numbers.

Registered eval tasks: ``generation`` (``path`` = any such YAML) and
``stdlib-completion`` (shipped in ``llmos_models/tasks_data/stdlib_completion``: finish
the first sentence of a held-out standard-library docstring; rebuilt by
``tasks_data/build_stdlib_task.py``). Results are version metrics
``task.<name>.v<version>.<metric>`` (plus ``.n``, the documents scored).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmos.sdk import ValidationError

from llmos_models.tasks import TASKS_DATA, LocalTask, _no_progress, _render

STDLIB_COMPLETION = TASKS_DATA / "stdlib_completion" / "stdlib_completion.yaml"


class GenerationTaskConfig(BaseModel):
    """A generation task from an lm-eval task YAML on this machine."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="The task's lm-eval YAML file (output_type generate_until, local JSON Lines).")
    metrics: list[str | dict[str, Any]] | None = Field(
        None, description="Metrics to report, as names or {metric = ..., options} (default: the YAML's metric_list).")
    limit: int | None = Field(None, ge=1, description="Score at most this many documents.")
    batch_size: int = Field(16, ge=1, le=4096, description="Prompts generated for at once.")
    max_new_tokens: int | None = Field(None, ge=1, le=4096,
                                       description="Override the YAML's generation_kwargs.max_gen_toks.")


class StdlibCompletionConfig(BaseModel):
    """The shipped task: finish the first sentence of a held-out stdlib docstring."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[str | dict[str, Any]] | None = Field(None, description="Metrics (default: exact_match, bleu, chrf).")
    limit: int | None = Field(None, ge=1, description="Score at most this many documents.")
    batch_size: int = Field(16, ge=1, le=4096, description="Prompts generated for at once.")
    max_new_tokens: int | None = Field(None, ge=1, le=4096, description="Override the YAML's max_gen_toks.")


class GenerationTask(LocalTask):
    """One generation task; ``evaluate(model, tokenizer)`` → ``{metric: value, "n": docs}``."""

    OUTPUT_TYPE = "generate_until"
    DEFAULT_PATH = STDLIB_COMPLETION
    DEFAULT_METRICS = ["exact_match", "bleu"]

    def __init__(self, config: GenerationTaskConfig | StdlibCompletionConfig) -> None:
        super().__init__(config)
        from llmos_models.generate import GenerationSettings

        kw = self.spec.get("generation_kwargs") or {}
        if not isinstance(kw, dict):
            raise ValidationError(f"{self.path}: generation_kwargs must be a mapping (until, max_gen_toks)")
        if kw.get("do_sample") or float(kw.get("temperature") or 0) > 0:
            raise ValidationError(f"{self.path}: generation_kwargs asks for sampling; generation tasks decode "
                                  f"greedily (set do_sample: false)")
        until = kw.get("until", [])
        until = [until] if isinstance(until, str) else until
        if not isinstance(until, list) or not all(isinstance(s, str) and s for s in until):
            raise ValidationError(f"{self.path}: generation_kwargs.until must be a list of non-empty strings")
        max_tokens = config.max_new_tokens or kw.get("max_gen_toks", 32)
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
            raise ValidationError(f"{self.path}: generation_kwargs.max_gen_toks must be 1 to 4096, got {max_tokens!r}")
        self.settings = GenerationSettings(max_new_tokens=max_tokens, stop=list(until))
        self.batch_size = config.batch_size

    def items(self) -> list[tuple[str, str]]:
        out = []
        for i, doc in enumerate(self.docs()):
            where = f"{self.data_path}: document {i + 1}"
            prompt = _render(self.spec.get("doc_to_text", "prompt"), doc, f"{where}: doc_to_text")
            target = _render(self.spec.get("doc_to_target", "target"), doc, f"{where}: doc_to_target")
            if isinstance(target, list) and len(target) == 1:
                target = target[0]
            if not isinstance(prompt, str) or not isinstance(target, (str, int, float)):
                raise ValidationError(f"{where}: doc_to_text and doc_to_target must give text (one reference)")
            if not prompt.strip() or not str(target).strip():
                empty = "doc_to_text" if not prompt.strip() else "doc_to_target"
                raise ValidationError(f"{where}: {empty} gave empty text (does the document have the field its "
                                      f"template names? it has: {', '.join(sorted(doc)) or 'none'})")
            out.append((prompt, str(target)))
        return out

    def evaluate(self, model: Any, tokenizer: Any, *, manager: Any = None, progress: Any = None) -> dict[str, float]:
        from llmos_models.generate import generate_batch

        if manager is None:
            from llmos.sdk import get_manager

            manager = get_manager()
        metric_fns = self.metric_functions(manager, "generations")
        items = self.items()
        with (progress or _no_progress)(len(items), f"task {self.key}") as bar:
            outs = generate_batch(model, tokenizer, [p for p, _ in items], self.settings,
                                  batch_size=self.batch_size, progress=bar)
        self.predictions = [o.text for o in outs]
        references = [t for _, t in items]
        out = {name: fn(self.predictions, references) for name, fn in metric_fns.items()}
        out["n"] = float(len(items))
        return out
