"""``llmos generate``: stream a model's completion of a prompt to the terminal.

Light module: click only at import time; torch and transformers load when the command runs.
"""

from __future__ import annotations

import click


@click.command("generate")
@click.argument("model_ref")
@click.argument("prompt")
@click.option("--max-new-tokens", "-n", type=click.IntRange(1, 100_000), default=64, show_default=True,
              help="Most tokens to generate.")
@click.option("--temperature", "-t", type=click.FloatRange(0, 100), default=0.0, show_default=True,
              help="0 = greedy; > 0 samples.")
@click.option("--top-k", type=click.IntRange(1), default=None, help="Sample among the k most likely tokens.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None, help="Nucleus sampling mass.")
@click.option("--typical-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Locally typical sampling mass.")
@click.option("--repetition-penalty", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="> 1 discourages repeats.")
@click.option("--num-beams", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Beam search width (beams are printed at the end, not streamed).")
@click.option("--stop", "stop", multiple=True, help="Stop before this string (repeatable).")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same text).")
@click.option("--no-stream", is_flag=True, help="Print the text once it is complete.")
@click.option("--device", default="auto", show_default=True,
              help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto: bf16 weights on CUDA GPUs that support it, fp32 elsewhere.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (text, token counts, finish reason).")
def generate(model_ref: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None,
             top_p: float | None, typical_p: float | None, repetition_penalty: float, num_beams: int,
             stop: tuple[str, ...], seed: int | None, device: str, precision: str, no_stream: bool,
             as_json: bool) -> None:
    """Complete PROMPT with a model and stream the tokens as they come.

    MODEL_REF is a registry reference (name, name:3, name@production) or a model
    directory (written by llmos or any Hugging Face causal LM with safetensors);
    an existing directory of that name wins. Greedy by default; --temperature > 0
    samples. Only the completion is printed, as it is generated.

    \b
    Examples:
      llmos generate quickstart@production "Return the"
      llmos generate quickstart:2 "The default" -t 0.8 --top-p 0.95 --seed 1
      llmos generate ./my-model "Hello" --num-beams 4 --stop "." --json
    """
    import sys
    import warnings

    from llmos.sdk import check_device_name
    from llmos_models.generate import GenerationSettings
    from llmos_models.generate import generate as run_generate
    from llmos_models.generate import stream
    from llmos_models.io import load_ref

    try:
        settings = GenerationSettings(
            max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, typical_p=typical_p,
            repetition_penalty=repetition_penalty, num_beams=num_beams, stop=list(stop), seed=seed,
        )
    except Exception as exc:  # pydantic.ValidationError
        from llmos.sdk import format_validation_error
        from llmos.sdk import ValidationError

        raise ValidationError(format_validation_error(exc)) from None
    try:
        check_device_name(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    model, tokenizer, version = load_ref(model_ref)
    from llmos_models.placement import place

    place(model, device, precision, what=version or model_ref)
    # warnings (e.g. positions past the training context) as one plain line on stderr
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"
    if tokenizer is None:
        from llmos.sdk import ValidationError

        raise ValidationError(f"{model_ref} has no tokenizer files (tokenizer.json); save it with llmos_models.io.save_model")
    if as_json or no_stream:
        result = run_generate(model, tokenizer, prompt, settings)
        if as_json:
            from llmos.sdk import echo_json

            data = {"model": version or model_ref, "prompt": prompt, **result.to_dict()}
            echo_json(data)
        else:
            click.echo(result.text)
        return
    for piece in stream(model, tokenizer, prompt, settings):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
