"""The work behind ``llmos compress`` and ``llmos compare``."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from llmos.sdk import (
    DATASET,
    LINEAGE,
    MODEL,
    MODEL_VERSION,
    TEACHER,
    TEACHER_VERSION,
    TOKENIZER,
    NotFoundError,
    ValidationError,
    parse_key_values,
    progress_bar,
)

#: metrics shown by compress/compare and recorded beside the parent's
TRADE_OFF = ("params", "size_bytes", "tokens_per_s", "latency_ms_per_token", "val_ppl")


def _component(method: str) -> Any:
    from llmos.sdk import get_manager

    manager = get_manager()
    try:
        return manager.get_component(f"compression.{method}")
    except (NotFoundError, ValidationError):
        names = sorted({c.name for c in manager.components() if c.stage == "compression"})
        raise ValidationError(
            f"unknown compression method {method!r}: use one of {', '.join(names) or '(none installed)'}"
        ) from None


def _recorded_data(reg: Any, info: Any, tokenizer: Any, block_size: int) -> tuple[Any, str | None]:
    """The dataset recorded in the parent's lineage (``lineage["data"]["path"]``, see
    :class:`llmos.artifacts.LineageData`) when it still exists on this machine."""
    from llmos_compress.measure import open_data

    data = (info.lineage or {}).get("data") or {}
    p = data.get("path") if isinstance(data, dict) else None  # llmos.artifacts.LineageData
    if isinstance(p, str) and Path(p).exists():
        return open_data(p, tokenizer, block_size), p
    return None, None


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "params":
        return f"{value / 1e6:.3f}M"
    if key == "size_bytes":
        return f"{value / 1e6:.2f} MB"
    if key == "tokens_per_s":
        return f"{value:.1f}"
    if key == "latency_ms_per_token":
        return f"{value:.2f} ms"
    return f"{value:.3f}"


def run_compress(ref: str, method: str, settings: tuple[str, ...], *, name: str | None, data: str | None,
                 description: str, aliases: tuple[str, ...], seed: int, as_json: bool) -> None:
    from llmos.sdk import RunContext
    from llmos.sdk import open_registry
    from llmos_models.io import load_model, read_meta, save_model

    from llmos_compress.measure import measure, model_block_size, open_data

    component = _component(method)
    cfg = component.validate_config(parse_key_values(settings, example="sparsity=0.3"))
    reg = open_registry()
    info = reg.resolve(ref)
    if name is not None:
        from llmos_registry import check_name

        check_name(name)
    src = reg.checkout(info.ref)
    model, tokenizer = load_model(src)
    meta = read_meta(src)
    block = model_block_size(model)
    dataset, data_path = (open_data(data, tokenizer, block), data) if data else _recorded_data(reg, info, tokenizer,
                                                                                                 block)
    step = component.load_factory()(cfg)
    needs = getattr(step, "needs_dataset", None)
    if dataset is None and callable(needs) and needs():
        raise ValidationError(
            f"compression.{component.name} with these settings needs training data: pass --data PATH "
            f"(a text file, a folder of text, or a packed dataset)"
        )
    say = (lambda *_a, **_k: None) if as_json else click.echo
    say(f"Measuring {info.ref} ...")
    parent_metrics = measure(model, path=src, data=dataset)
    work = Path(tempfile.mkdtemp(prefix="llmos-compress-"))
    try:
        ctx = RunContext(run_id=None, spec=None, workdir=work, seed=seed)
        ctx._progress_factory = None if as_json else progress_bar
        MODEL.set(ctx, model)
        MODEL_VERSION.set(ctx, info.ref)
        if tokenizer is not None:
            TOKENIZER.set(ctx, tokenizer)
        if dataset is not None:
            DATASET.set(ctx, dataset)
        if component.name == "distill":  # REF is the teacher; the student is made from it
            TEACHER.set(ctx, model)
            TEACHER_VERSION.set(ctx, info.ref)
        say(f"Compressing with compression.{component.name} ...")
        runner = getattr(step, "run", step)
        step_metrics = runner(ctx) or {}
        new = MODEL.get(ctx)
        lineage = dict(LINEAGE.get(ctx) or {
            "method": component.name, "settings": cfg.model_dump(mode="json") if cfg is not None else {}})
        lineage["component"] = component.qualified_ref
        if data_path:
            lineage["data"] = {"path": str(Path(data_path).resolve())}
        out = save_model(new, tokenizer, work / "model", generation=meta.get("generation"),
                         chat_template=meta.get("chat_template"))
        reloaded, _ = load_model(out)  # measure what is registered, as it loads back
        say(f"Measuring the {component.name} model ...")
        child_metrics = measure(reloaded, path=out, data=dataset)
        metrics: dict[str, float] = {}
        for k, v in step_metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[f"step_{k}" if k in child_metrics else k] = float(v)
        metrics.update(child_metrics)
        for k, v in parent_metrics.items():
            metrics[f"parent_{k}"] = v
            if k in child_metrics and v:
                metrics[f"{k}_ratio"] = child_metrics[k] / v
        tags = {"compression": component.name}
        version = reg.register_version(
            name or info.model, out, description=description or f"{component.name} of {info.ref}", tags=tags,
            metrics=metrics, parents=[info.ref], lineage=lineage, aliases=list(aliases),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if as_json:
        click.echo(json.dumps({"ref": version.ref, "parent": info.ref, "lineage": lineage, "metrics": metrics},
                              indent=2))
        return
    from llmos.sdk import echo_table

    rows = []
    for k in TRADE_OFF:
        p, c = parent_metrics.get(k), child_metrics.get(k)
        ratio = f"{c / p:.3f}x" if (p and c is not None) else "-"
        rows.append((k, _fmt(k, p), _fmt(k, c), ratio))
    click.echo(f"Registered {version.ref} ({component.name} of {info.ref})")
    echo_table(rows, ["metric", info.ref, version.ref, "ratio"])
    if component.name == "prune" and not getattr(cfg, "structured", True):
        click.echo(f"sparsity {metrics.get('sparsity', 0):.1%}: weights are stored dense, so neither size nor "
                   f"CPU speed improves (use --set structured=true for a smaller, faster model)")
    if dataset is None:
        click.echo("perplexity not measured: pass --data PATH (text or a packed dataset)")


def run_compare(refs: tuple[str, ...], *, data: str | None, speed: bool, as_json: bool) -> None:
    from llmos.sdk import open_registry
    from llmos_models.io import load_model

    from llmos_compress.measure import measure, model_block_size, open_data

    reg = open_registry()
    infos = [reg.resolve(r) for r in refs]  # every ref must exist before measuring anything
    rows: list[dict[str, Any]] = []
    dataset = None
    for info in infos:
        path = reg.checkout(info.ref)
        model, tokenizer = load_model(path)
        if data and dataset is None:
            dataset = open_data(data, tokenizer, model_block_size(model))
        m = measure(model, path=path, data=dataset, speed=speed)
        recorded = dataset is None and "val_ppl" in info.metrics
        if recorded:
            m["val_ppl"] = info.metrics["val_ppl"]
        rows.append({"ref": info.ref, "method": (info.lineage or {}).get("method"), "parents": info.parents,
                     "ppl_source": "measured" if dataset is not None else ("recorded" if recorded else None),
                     **{k: m.get(k) for k in TRADE_OFF}})
        del model
    base = rows[0]
    for r in rows:
        r["ratios"] = {k: (r[k] / base[k]) if (r.get(k) is not None and base.get(k)) else None for k in TRADE_OFF}
    if as_json:
        click.echo(json.dumps({"versions": rows, "baseline": base["ref"]}, indent=2))
        return
    from llmos.sdk import echo_table

    table = []
    for r in rows:
        ppl = _fmt("val_ppl", r["val_ppl"]) + ("*" if r["ppl_source"] == "recorded" else "")
        speedup = r["ratios"]["tokens_per_s"]
        size = r["ratios"]["size_bytes"]
        table.append((r["ref"], r["method"] or "-", _fmt("params", r["params"]), _fmt("size_bytes", r["size_bytes"]),
                      f"{size:.2f}x" if size else "-", _fmt("tokens_per_s", r["tokens_per_s"]),
                      f"{speedup:.2f}x" if speedup else "-", _fmt("latency_ms_per_token", r["latency_ms_per_token"]),
                      ppl))
    echo_table(table, ["version", "method", "params", "weights", "size", "tokens/s", "speed", "latency/token",
                       "val ppl"], title=f"trade-offs (ratios against {base['ref']})")
    if any(r["ppl_source"] == "recorded" for r in rows):
        click.echo("* recorded at registration; pass --data PATH to measure every version on the same text")
