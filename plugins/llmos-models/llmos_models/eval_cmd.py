"""``llmos evaluate``: run eval tasks on a model version and record the results.

Light module: click only at import time; torch and transformers load when the command runs.
"""

from __future__ import annotations

from typing import Any

import click

from llmos.sdk import json_option


@click.command("evaluate")
@click.argument("model_ref")
@click.option("--task", "tasks", multiple=True, metavar="NAME",
              help="A registered eval task (llmos components --kind eval_tasks), e.g. stdlib-completion (repeatable).")
@click.option("--task-file", "task_files", multiple=True, metavar="YAML",
              help="An lm-eval task YAML with local data: multiple_choice or generate_until (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score at most this many documents per task.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
              help="Prompts generated for at once (generation tasks).")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Log the results as metrics of MODEL_REF's registry version.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@json_option
def evaluate(model_ref: str, tasks: tuple[str, ...], task_files: tuple[str, ...], limit: int | None,
             batch_size: int | None, record: bool, device: str, as_json: bool) -> None:
    """Run eval tasks on MODEL_REF and print (and record) task.<name>.v<version>.<metric>.

    MODEL_REF is a registry reference (name, name:3, name@production) or a model
    directory. With a registry reference the results become metrics of that version
    (what `llmos deploy promote --require` rules compare).

    \b
    Examples:
      llmos evaluate quickstart@candidate --task stdlib-completion --task stdlib-docstrings
      llmos evaluate ./my-model --task-file my_task.yaml --limit 50 --json
    """
    run_evaluate(model_ref, tasks=tasks, task_files=task_files, limit=limit, batch_size=batch_size, record=record,
                 device=device, as_json=as_json)


def task_specs(tasks: tuple[str, ...], task_files: tuple[str, ...], limit: int | None,
               batch_size: int | None) -> list[dict[str, Any]]:
    """``--task``/``--task-file`` as ``run_tasks`` specs (a file's kind from its output_type)."""
    from pathlib import Path

    import yaml

    from llmos.sdk import ValidationError

    specs: list[dict[str, Any]] = [{"name": t} for t in tasks]
    for f in task_files:
        try:
            kind = (yaml.safe_load(Path(f).read_text()) or {}).get("output_type")
        except (OSError, yaml.YAMLError, AttributeError) as exc:
            raise ValidationError(f"--task-file {f}: cannot read an lm-eval task YAML ({exc})") from None
        name = {"multiple_choice": "multiple-choice", "generate_until": "generation"}.get(kind)
        if name is None:
            raise ValidationError(f"--task-file {f}: output_type {kind!r}: give a multiple_choice or generate_until task")
        specs.append({"name": name, "path": str(Path(f).resolve())})
    if not specs:
        raise ValidationError("give a task: --task NAME (e.g. stdlib-completion) or --task-file YAML")
    for s in specs:
        if limit is not None:
            s["limit"] = limit
        if batch_size is not None and s["name"] in ("generation", "stdlib-completion"):
            s["batch_size"] = batch_size
    return specs


def run_evaluate(model_ref: str, *, tasks: tuple[str, ...] = (), task_files: tuple[str, ...] = (),
                 limit: int | None = None, batch_size: int | None = None, record: bool = True, device: str = "cpu",
                 as_json: bool = False) -> dict[str, float]:
    import sys

    from llmos.sdk import ValidationError, check_device_name, place_for_inference, progress_bar

    from llmos_models.io import load_ref
    from llmos_models.tasks import run_tasks

    specs = task_specs(tasks, task_files, limit, batch_size)
    try:
        check_device_name(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    model, tokenizer, version = load_ref(model_ref)
    if tokenizer is None:
        raise ValidationError(f"{model_ref} has no tokenizer files (tokenizer.json): tasks need its tokenizer")
    place_for_inference(model, device, "fp32")

    def bars(total: int, description: str) -> Any:
        if sys.stderr.isatty():
            return progress_bar(total, description, unit="request")
        from llmos.sdk import NullProgress

        return NullProgress()

    results = run_tasks(specs, model, tokenizer, progress=bars)
    recorded = None
    if record and version is not None:
        from llmos.sdk import open_registry

        recorded = open_registry().log_metrics(version, results).ref
    if as_json:
        from llmos.sdk import echo_json

        echo_json({"model": version or model_ref, "recorded": recorded, "metrics": results})
    else:
        for key in sorted(results):
            click.echo(f"{key} = {results[key]:.4g}")
        if recorded:
            click.echo(f"recorded as metrics of {recorded}")
    return results
