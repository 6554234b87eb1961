"""``llmos compress`` and ``llmos compare`` (light: click only; the work is
imported from :mod:`llmos_compress.cli` when a command runs)."""

from __future__ import annotations

import click

from llmos.sdk import json_option


@click.command("compress")
@click.argument("ref")
@click.option("--method", "-m", required=True, metavar="METHOD",
              help="A compression component: int8, prune, distill (or one from another plugin).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A setting of the method (repeatable; values are JSON or text), e.g. --set sparsity=0.3.")
@click.option("--name", default=None, help="Register under this model name (default: REF's model).")
@click.option("--data", "data", default=None, type=click.Path(path_type=str),
              help="Text file, folder of text, or packed dataset: measures perplexity and feeds fine-tuning.")
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Point this alias at the new version.")
@click.option("--seed", default=0, show_default=True, help="Random seed of fine-tuning and measurement.")
@json_option
def compress(ref: str, method: str, settings: tuple[str, ...], name: str | None, data: str | None,
             description: str, aliases: tuple[str, ...], seed: int, as_json: bool) -> None:
    """Compress version REF and register the result as a new version.

    The new version records its lineage (parent REF, method, settings) and its
    metrics beside the parent's, measured in the same process: parameters, bytes on
    disk, tokens/s and latency per token (greedy, one sequence, KV cache) and, with
    --data, validation perplexity (parent_* metrics and *_ratio give the trade-off).

    \b
    Methods (see `llmos components compression` for every setting):
      int8     dynamic int8 quantization of Linear layers (4x smaller weights)
      prune    magnitude pruning (sparsity only), or --set structured=true to remove
               MLP neurons / attention heads (really smaller and faster)
      distill  train a smaller student (half the layers) from REF as the teacher
    \b
    Examples:
      llmos compress quickstart:1 --method int8 --data corpus.txt
      llmos compress quickstart:1 -m prune --set structured=true --set sparsity=0.3 \\
          --set recovery_steps=100 --data corpus.txt
      llmos compress quickstart:1 -m distill --set steps=300 --data corpus.txt --name qs-student
    """
    from llmos_compress.cli import run_compress

    run_compress(ref, method, settings, name=name, data=data, description=description, aliases=aliases,
                 seed=seed, as_json=as_json)


@click.command("compare")
@click.argument("refs", nargs=-1, required=True)
@click.option("--data", "data", default=None, type=click.Path(path_type=str),
              help="Text file, folder of text, or packed dataset to measure perplexity on "
                   "(default: each version's recorded val_ppl).")
@click.option("--no-speed", is_flag=True, help="Skip the speed measurement (faster; speed columns empty).")
@json_option
def compare(refs: tuple[str, ...], data: str | None, no_speed: bool, as_json: bool) -> None:
    """Print the trade-off table of versions REFS side by side.

    Columns: parameters, bytes on disk (weights), tokens/s and latency per token
    (measured now, greedy generation of one sequence), validation perplexity (measured
    on --data, else the version's recorded val_ppl, marked *), and each ratio
    against the first REF.

    \b
    Example:
      llmos compare quickstart:1 quickstart:2 quickstart:3 --data corpus.txt
      llmos compare quickstart:1 quickstart@production --json
    """
    from llmos_compress.cli import run_compare

    run_compare(refs, data=data, speed=not no_speed, as_json=as_json)
