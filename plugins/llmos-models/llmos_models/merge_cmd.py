"""``llmos merge``: an adapter version plus its base → a full version.

Light module: click only at import time; the work is in :func:`run_merge`.
"""

from __future__ import annotations

from typing import Any

import click

from llmos.sdk import json_option


@click.command("merge")
@click.argument("ref")
@click.option("--name", default=None, help="Register under this model name (default: REF's model).")
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Point this alias at the new version.")
@json_option
def merge(ref: str, name: str | None, description: str, aliases: tuple[str, ...], as_json: bool) -> None:
    """Merge adapter version REF into its base and register the full model.

    REF is an adapter version (made by optimizer.lora); its base is the version's
    parent in the registry. The new version holds every weight (base + the
    adapter's low-rank update, added in) and the base's tokenizer; its parent is
    REF, so `llmos model lineage` shows base → adapter → merged.

    \b
    Examples:
      llmos merge quickstart:3
      llmos merge quickstart@lora --name quickstart-merged --alias candidate
    """
    run_merge(ref, name=name, description=description, aliases=aliases, as_json=as_json)


def run_merge(ref: str, *, name: str | None = None, description: str = "", aliases: tuple[str, ...] = (),
              as_json: bool = False) -> Any:
    import tempfile
    from pathlib import Path

    from llmos.sdk import ValidationError
    from llmos.sdk import open_registry

    from llmos_models.adapter import is_adapter_model, merge as merge_model
    from llmos_models.evaluate import model_size_bytes
    from llmos_models.io import load_ref, read_meta, resolve_model_path, save_model

    path, resolved = resolve_model_path(ref)
    if resolved is None:
        raise ValidationError(f"{ref!r} is a directory: merge takes a registry reference (register the adapter first)")
    meta = read_meta(path)
    if meta.get("kind") != "adapter":
        raise ValidationError(f"{resolved} is not an adapter version (it is a full model): nothing to merge")
    model, tokenizer, _ = load_ref(resolved)
    if not is_adapter_model(model):  # pragma: no cover - load_ref returns peft models for adapters
        raise ValidationError(f"{resolved} did not load as an adapter")
    base = model.llmos_base
    merged = merge_model(model)
    reg = open_registry()
    info_in = reg.resolve(resolved)
    with tempfile.TemporaryDirectory(prefix="llmos-merge-") as tmp:
        out = save_model(merged, tokenizer, Path(tmp) / "merged", generation=meta.get("generation"),
                         chat_template=meta.get("chat_template"))
        metrics = {k: v for k, v in (info_in.metrics or {}).items() if k.startswith(("val_", "test_", "task."))}
        metrics["size_bytes"] = float(model_size_bytes(merged))
        info = reg.register_version(
            name or info_in.model, out, description=description or f"{resolved} merged into its base {base}",
            tags={"stage": "merged"}, metrics=metrics, parents=[resolved], aliases=list(aliases),
            lineage={"method": "merge", "adapter": resolved, "base": base},
        )
    if as_json:
        from llmos.sdk import echo_json

        echo_json(info.to_dict())
    else:
        click.echo(f"Merged {resolved} into its base {base}: registered {info.ref} ({info.size_bytes:,} bytes)")
    return info
