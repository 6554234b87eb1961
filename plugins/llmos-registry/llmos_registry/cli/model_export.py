"""``llmos model export``: a version to a directory, in any format.

``hf``/``safetensors`` are the registry's own (:meth:`llmos_registry.Registry.export`);
any other format, and weights a Hugging Face loader cannot read (int8), go through a
deployment component of the plugin manager. This is the one place where the CLI layer
resolves components for the registry: the registry never calls into plugins.
"""

from __future__ import annotations

from typing import Any

import click

from llmos_registry.cli.model import _pairs, _registry


@click.command("export")
@click.argument("ref")
@click.argument("dest", type=click.Path(path_type=str))
@click.option("--format", "fmt", default="hf", show_default=True,
              help="hf (a Hugging Face layout directory) or any deployment exporter, e.g. onnx.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="An exporter setting (repeatable).")
def export(ref: str, dest: str, fmt: str, settings: tuple[str, ...]) -> None:
    """Export a version to DEST (a new or empty directory).

    \b
    Example:
      llmos model export tiny@production ./tiny-hf
      llmos model export tiny:2 ./tiny-onnx --format onnx --set opset=17
    """
    import json

    parsed: dict[str, Any] = {}
    for key, value in _pairs(settings, "set").items():
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    paths = export_version(_registry(), ref, dest, format=fmt, settings=parsed)
    click.echo(f"Exported {ref} to {dest} ({len(paths)} files, format {fmt})")


def _needs_rewrite(reg: Any, ref: str, format: str, manager: Any = None) -> Any:
    """None when ``ref`` is a plain Hugging Face directory (its files are the export);
    else the ``deployment.safetensors`` exporter, which rewrites weights that need a model
    loader other than ``hf`` (int8: dequantized) as plain safetensors — copying them would
    load in transformers with random weights.

    :raises ValidationError: an ONNX export, or no plugin to rewrite the weights.
    """
    import json

    from llmos.sdk import NotFoundError, ValidationError

    try:
        meta = json.loads((reg.checkout(ref) / "llmos.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("loader") in (None, "", "hf"):
        return None  # read by the plain Hugging Face loader
    if meta.get("architecture") == "onnx":
        raise ValidationError(f"{ref} is an ONNX export, with no PyTorch weights to export as {format}: "
                              f"export the version it was made from (llmos model lineage {ref})")
    if manager is None:
        from llmos.sdk import get_manager

        manager = get_manager()
    try:
        component = manager.get_component("deployment.safetensors")
    except NotFoundError:
        raise ValidationError(
            f"{ref} needs the model loader {meta['loader']!r} (e.g. int8 weights), so copying its files would not "
            f"load in transformers: install llmos-export, whose deployment.safetensors dequantizes it"
        ) from None
    return component.create({})


def export_version(
    reg: Any, ref: str, dest: Any, *, format: str = "hf", settings: dict[str, Any] | None = None,
    manager: Any = None,
) -> list[Any]:
    """Export ``ref`` to ``dest``: ``hf``/``safetensors`` by the registry itself (or, for
    a version whose ``llmos.json`` names a loader other than ``hf`` — int8 — by
    ``deployment.safetensors``, dequantized), any other format ``X`` by the deployment component ``deployment.X`` of ``manager``
    (default: the process-wide plugin manager), whose ``export(version_dir, out_dir)``
    writes it. The registry never resolves components: that is this layer's job."""
    import re
    from pathlib import Path

    from llmos.sdk import LlmosError, NotFoundError, ValidationError
    from llmos_registry.files import HF_FORMATS, check_export_dest

    if format in HF_FORMATS:
        if settings:
            raise ValidationError(f"format {format!r} takes no settings, got {sorted(settings)}")
        rewrite = _needs_rewrite(reg, ref, format, manager)
        if rewrite is None:
            return list(reg.export(ref, dest, format=format))
        out = check_export_dest(dest)
        src = reg.checkout(ref)
        out.mkdir(parents=True, exist_ok=True)
        return [Path(p) for p in rewrite.export(src, out)]
    if not re.fullmatch(r"[\w\-.]+", format):
        raise ValidationError(f"invalid export format {format!r}")
    out = check_export_dest(dest)
    if manager is None:
        from llmos.sdk import get_manager

        manager = get_manager()
    try:
        component = manager.get_component(f"deployment.{format}")
    except NotFoundError as exc:
        raise NotFoundError(
            f"no exporter for format {format!r}: {exc.message}; use --format hf or install a plugin providing "
            f"deployment.{format}"
        ) from exc
    exporter = component.create(dict(settings or {}))
    if not hasattr(exporter, "export"):
        raise LlmosError(f"component deployment.{format} cannot export (it has no export(version_dir, out_dir) method)")
    src = reg.checkout(ref)
    out.mkdir(parents=True, exist_ok=True)
    return [Path(p) for p in exporter.export(src, out)]
