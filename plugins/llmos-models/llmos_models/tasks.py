"""Evaluation tasks: multiple-choice log-likelihood tasks in lm-eval-harness's format,
read from local files (nothing is downloaded).

A task is an lm-eval task YAML whose dataset is a local JSON Lines file::

    task: stdlib_docstrings
    dataset_path: json
    dataset_kwargs: {data_files: {test: test.jsonl}}   # relative to the YAML file
    test_split: test
    output_type: multiple_choice
    doc_to_text: "{{context}}"
    doc_to_choice: "{{choices}}"
    doc_to_target: "{{gold}}"
    metric_list: [{metric: acc}, {metric: acc_norm}]
    metadata: {version: 1.0}

lm-eval-harness runs the same file (its ``TaskManager(include_path=...)``); llmos runs
it with :func:`llmos_models.harness.loglikelihood` and the metrics registered through
``llmos_register_eval_metrics`` (``acc``: the most likely choice is the gold one;
``acc_norm``: the same with log-likelihoods divided by the choice's length in bytes).
Results are version metrics named ``task.<name>.v<version>.<metric>`` (e.g.
``task.stdlib_docstrings.v1.0.acc``; the registry's metric names take no ``@``).

The tasks are an extension point (``llmos_register_eval_tasks``): llmos-models
registers ``multiple-choice`` (``path`` = any such YAML) and ``stdlib-docstrings``
(the task shipped in ``llmos_models/tasks_data/``, rebuilt by ``build_stdlib_task.py``).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmos.sdk import NotFoundError, ValidationError

TASKS_DATA = Path(__file__).resolve().parent / "tasks_data"
STDLIB_TASK = TASKS_DATA / "stdlib_docstrings" / "stdlib_docstrings.yaml"


class MultipleChoiceConfig(BaseModel):
    """A multiple-choice task from an lm-eval task YAML on this machine."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="The task's lm-eval YAML file (its dataset: local JSON Lines).")
    metrics: list[str] | None = Field(None, description="Metrics to report (default: the YAML's metric_list).")
    limit: int | None = Field(None, ge=1, description="Score at most this many documents.")


class StdlibConfig(BaseModel):
    """The shipped task: pick the true next sentence of a held-out stdlib docstring."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[str] | None = Field(None, description="Metrics to report (default: acc and acc_norm).")
    limit: int | None = Field(None, ge=1, description="Score at most this many documents.")


def _render(template: Any, doc: dict[str, Any], where: str) -> Any:
    """lm-eval's doc_to_* semantics: a column name, a Jinja template, or a literal list/int."""
    if isinstance(template, (list, int)):
        return template
    if not isinstance(template, str):
        raise ValidationError(f"{where}: must be a column name or a Jinja template, got {type(template).__name__}")
    if template in doc:
        return doc[template]
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    text = ImmutableSandboxedEnvironment().from_string(template).render(**doc)
    stripped = text.strip()
    if stripped.startswith("[") or stripped.lstrip("-").isdigit():
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            pass
    return text


class LocalTask:
    """An lm-eval task YAML whose data is a local JSON Lines file (the part every task
    kind shares: the file, its documents, name, version and metrics)."""

    OUTPUT_TYPE = ""
    DEFAULT_PATH = STDLIB_TASK
    DEFAULT_METRICS: list[Any] = ["acc", "acc_norm"]

    def __init__(self, config: Any) -> None:
        import yaml

        path = Path(getattr(config, "path", None) or self.DEFAULT_PATH).expanduser()
        if not path.is_file():
            raise NotFoundError(f"task file {str(path)!r} does not exist: give an lm-eval task YAML")
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValidationError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(spec, dict) or not spec.get("task"):
            raise ValidationError(f"{path}: an lm-eval task YAML needs a 'task' name")
        if spec.get("output_type") != self.OUTPUT_TYPE:
            other = {"multiple_choice": "multiple-choice", "generate_until": "generation"}.get(spec.get("output_type"))
            hint = f" (a {other} task: run it as {{name = '{other}', path = ...}})" if other else ""
            raise ValidationError(f"{path}: output_type {spec.get('output_type')!r}: this task kind runs "
                                  f"{self.OUTPUT_TYPE} tasks{hint}")
        if spec.get("dataset_path") != "json":
            raise ValidationError(f"{path}: dataset_path must be 'json' (a local JSON Lines file; nothing is downloaded)")
        split = spec.get("test_split") or spec.get("validation_split")
        files = ((spec.get("dataset_kwargs") or {}).get("data_files") or {})
        data = files.get(split) if isinstance(files, dict) else files
        if not isinstance(data, str):
            raise ValidationError(f"{path}: dataset_kwargs.data_files.{split} must name one local file")
        self.path, self.spec = path, spec
        self.data_path = (path.parent / data) if not Path(data).is_absolute() else Path(data)
        self.name = str(spec["task"])
        self.version = str((spec.get("metadata") or {}).get("version", "0"))
        listed = [m for m in spec.get("metric_list") or [] if isinstance(m, dict) and "metric" in m]
        #: metric specs: a name, or {"metric": name, **options} (lm-eval's metric_list entries)
        self.metric_specs: list[Any] = list(config.metrics or listed or self.DEFAULT_METRICS)
        self.metrics = [m["metric"] if isinstance(m, dict) else m for m in self.metric_specs]
        self.limit = config.limit
        self.delimiter = str(spec.get("target_delimiter", " "))

    @property
    def key(self) -> str:
        """``<name>.v<version>``: the middle of this task's version metrics (``task.<key>.<metric>``)."""
        return f"{self.name}.v{self.version}"

    def docs(self) -> list[dict[str, Any]]:
        if not self.data_path.is_file():
            raise NotFoundError(f"{self.path}: its data file {str(self.data_path)!r} does not exist")
        out = []
        with open(self.data_path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError as exc:
                        raise ValidationError(f"{self.data_path}:{lineno}: not valid JSON ({exc})") from None
                if self.limit is not None and len(out) >= self.limit:
                    break
        return out

    def metric_functions(self, manager: Any, scores: str) -> dict[str, Any]:
        """``{name: metric}`` through the registered eval metrics, each spec's options
        validated by the metric's config; a metric of the wrong kind is refused."""
        out = {}
        for spec in self.metric_specs:
            name = spec["metric"] if isinstance(spec, dict) else spec
            options = {k: v for k, v in spec.items() if k not in ("metric", "aggregation", "higher_is_better")} \
                if isinstance(spec, dict) else {}
            ext = manager.get_extension("eval_metrics", name)
            try:
                cfg = ext.validate_config(options) if ext.config is not None else (options or None)
            except Exception as exc:  # noqa: BLE001 - pydantic's error, reported located
                raise ValidationError(f"{self.path}: metric {name!r}: {exc}") from None
            fn = ext.load_factory()(cfg)
            kind = getattr(fn, "scores", "multiple_choice")
            if kind != scores:
                raise ValidationError(f"{self.path}: metric {name!r} scores {kind.replace('_', '-')} outputs, "
                                      f"not this task's {scores.replace('_', '-')}")
            out[name] = fn
        return out


class MultipleChoiceTask(LocalTask):
    """One multiple-choice task; ``evaluate(model, tokenizer)`` → ``{metric: value}``."""

    OUTPUT_TYPE = "multiple_choice"

    def evaluate(self, model: Any, tokenizer: Any, *, manager: Any = None, progress: Any = None) -> dict[str, float]:
        from llmos_models.harness import loglikelihood

        if manager is None:
            from llmos.sdk import get_manager

            manager = get_manager()
        # an eval metric's factory(config) returns metric(log_likelihoods, choices, gold) -> float
        metric_fns = self.metric_functions(manager, "multiple_choice")
        items = []
        for i, doc in enumerate(self.docs()):
            where = f"{self.data_path}: document {i + 1}"
            context = str(_render(self.spec.get("doc_to_text", "text"), doc, f"{where}: doc_to_text"))
            choices = _render(self.spec.get("doc_to_choice", "choices"), doc, f"{where}: doc_to_choice")
            gold = _render(self.spec.get("doc_to_target", "gold"), doc, f"{where}: doc_to_target")
            if not isinstance(choices, list) or len(choices) < 2:
                raise ValidationError(f"{where}: doc_to_choice must give a list of at least two choices")
            if isinstance(gold, str) and gold in choices:
                gold = choices.index(gold)
            if not isinstance(gold, int) or not 0 <= gold < len(choices):
                raise ValidationError(f"{where}: doc_to_target must give the gold choice's index (or text)")
            items.append((context, [str(c) for c in choices], gold))
        requests = [(ctx, self.delimiter + c) for ctx, choices, _ in items for c in choices]
        with (progress or _no_progress)(len(requests), f"task {self.key}") as bar:
            lls = [ll for ll, _ in loglikelihood(model, tokenizer, requests, progress=bar)]
        scores: dict[str, list[float]] = {m: [] for m in self.metrics}
        pos = 0
        for _, choices, gold in items:
            mine = lls[pos: pos + len(choices)]
            pos += len(choices)
            for m, fn in metric_fns.items():
                scores[m].append(float(fn(mine, choices, gold)))
        out = {m: sum(v) / len(v) for m, v in scores.items() if v}
        out["n"] = float(len(items))
        return out


def _no_progress(total: int, description: str) -> Any:
    from llmos.sdk import NullProgress

    return NullProgress()


def accuracy(lls: list[float], choices: list[str], gold: int) -> float:
    """``acc``: 1 when the most likely choice is the gold one."""
    return float(max(range(len(lls)), key=lambda i: lls[i]) == gold)


def accuracy_norm(lls: list[float], choices: list[str], gold: int) -> float:
    """``acc_norm``: like acc, with each log-likelihood divided by its choice's length in bytes."""
    norm = [ll / max(1, len(c.encode("utf-8"))) for ll, c in zip(lls, choices, strict=True)]
    return float(max(range(len(norm)), key=lambda i: norm[i]) == gold)


def accuracy_metric(config: Any = None) -> Any:
    return accuracy


def accuracy_norm_metric(config: Any = None) -> Any:
    return accuracy_norm


def run_tasks(specs: list[Any], model: Any, tokenizer: Any, *, manager: Any = None,
              progress: Any = None) -> dict[str, float]:
    """Run eval task specs (``"name"`` or ``{"name": ..., **config}``) through the registered
    eval tasks; returns version metrics ``task.<name>.v<version>.<metric>``.

    ``progress``: ``progress(total, description)`` → a progress bar (``ctx.progress``
    with its unit bound); each task draws one."""
    if manager is None:
        from llmos.sdk import get_manager

        manager = get_manager()
    out: dict[str, float] = {}
    for spec in specs:
        name, settings = (spec, {}) if isinstance(spec, str) else (spec.get("name"), {k: v for k, v in spec.items()
                                                                                      if k != "name"})
        if not name:
            raise ValidationError(f"eval task {spec!r}: give its registered name, e.g. 'stdlib-docstrings'")
        ext = manager.get_extension("eval_tasks", name)
        cfg = ext.validate_config(settings) if ext.config is not None else settings
        task = ext.load_factory()(cfg)
        for metric, value in task.evaluate(model, tokenizer, manager=manager, progress=progress).items():
            out[f"task.{task.key}.{metric}"] = value
    return out
