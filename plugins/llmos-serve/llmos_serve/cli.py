"""``llmos serve`` and ``llmos deploy``: click commands (light; heavy imports inside)."""

from __future__ import annotations

import click

from llmos.sdk import echo_json as _echo_json


@click.command("serve")
@click.argument("model_ref")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (each loads the model).")
@click.option("--canary", default=None, metavar="REF", help="Second version getting --canary-percent of requests.")
@click.option("--canary-percent", default=0.0, show_default=True, type=click.FloatRange(0, 100),
              help="Share of requests for the canary, in percent.")
@click.option("--also", "also", multiple=True, metavar="REF",
              help="Also serve this version (repeatable), chosen by requests naming it: e.g. several adapter "
                   "versions of one base, which share one loaded base.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
              help="Where versions run: auto is cuda, then mps, then cpu (a version's tag device=... decides "
                   "under auto).")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="auto: bf16 on CUDA GPUs that support it, fp32 elsewhere (a version's tag precision=... "
                   "decides under auto).")
@click.option("--admin-token", envvar="LLMOS_ADMIN_TOKEN", default=None, metavar="TOKEN",
              help="Bearer token enabling /admin/alias and /admin/reload [env: LLMOS_ADMIN_TOKEN].")
@click.option("--api-key", envvar="LLMOS_API_KEY", default=None, metavar="KEY",
              help="Key every /v1/* request must send as 'Authorization: Bearer KEY' (OpenAI clients: api_key=KEY); "
              "prefer the environment variable, which no process list shows [env: LLMOS_API_KEY].")
@click.option("--drain-timeout", default=30.0, show_default=True, type=click.FloatRange(0),
              help="On SIGTERM or Ctrl-C: seconds in-flight requests get to finish before they are cut.")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="torch threads per server process [default: all cores, divided between workers].")
@click.option("--engine", default="auto", show_default=True, metavar="auto|eager|ort",
              help="Decoding engine: eager (PyTorch), ort (ONNX Runtime: ONNX versions, or a PyTorch version "
                   "exported once and cached), auto (ort for ONNX versions and cached exports, else eager; "
                   "a version's tag engine=... decides under auto).")
@click.option("--max-batch-size", default=16, show_default=True, type=click.IntRange(1, 1024),
              help="Most sequences decoded together in one forward pass.")
@click.option("--max-queue", default=64, show_default=True, type=click.IntRange(0),
              help="Most sequences waiting for a slot; beyond that requests get 429.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a request may take before 504.")
@click.option("--max-tokens-limit", default=None, type=click.IntRange(1),
              help="Largest max_tokens a request may ask for [default: the context length].")
@click.option("--poll-interval", default=2.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between checks of the alias being served (0: never).")
@click.option("--max-body-bytes", default=1_000_000, show_default=True, type=click.IntRange(1024),
              help="Largest request body (413 beyond).")
@click.option("--no-access-log", is_flag=True, help="Do not log a line per request.")
def serve(model_ref: str, host: str, port: int, workers: int, canary: str | None, canary_percent: float,
          also: tuple[str, ...], device: str, precision: str, admin_token: str | None, api_key: str | None, drain_timeout: float, threads: int | None, engine: str, max_batch_size: int, max_queue: int, timeout: float,
          max_tokens_limit: int | None, poll_interval: float, max_body_bytes: int, no_access_log: bool) -> None:
    """Serve MODEL_REF with an OpenAI-compatible HTTP API.

    MODEL_REF is a registry reference — 'name' (latest version), 'name:N' or
    'name@alias' (followed live: move the alias and the server switches without
    a restart) — or a model directory.

    \b
    Examples:
      llmos serve quickstart@production
      llmos serve quickstart@production --canary quickstart@canary --canary-percent 10
      llmos serve ./exports/quickstart --port 9000 --workers 2
      llmos serve quickstart-lora:1 --also quickstart-lora:2 --device cuda   # two adapters, one base

    \b
    Then, with any OpenAI client:
      curl localhost:8000/v1/completions -H 'content-type: application/json' \\
           -d '{"model": "quickstart", "prompt": "Once upon a time", "max_tokens": 32}'

    Endpoints: /v1/models, /v1/completions, /v1/chat/completions (stream: true
    for server-sent events), /health, /ready, /metrics (Prometheus), and with
    --admin-token: POST /admin/alias, POST /admin/reload. Every response carries
    the header X-Llmos-Model-Version: name:N.

    \b
    Beyond this machine (--host 0.0.0.0), protect /v1/* with a key:
      LLMOS_API_KEY=$(openssl rand -hex 16) llmos serve quickstart@production --host 0.0.0.0

    On SIGTERM (systemd, Docker, Kubernetes) or Ctrl-C the server stops
    accepting connections, lets in-flight requests finish (--drain-timeout),
    closes its monitoring run and exits with status 0.
    """
    from llmos_serve.config import ServeConfig
    from llmos_serve.server import serve as run

    _hide_secrets(("--api-key", "--admin-token"))
    from llmos.sdk import check_device_name

    try:
        check_device_name(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    config = ServeConfig(
        model=model_ref, host=host, port=port, workers=workers, canary=canary, canary_percent=canary_percent,
        also=list(also), device=device, precision=precision,
        admin_token=admin_token or None, api_key=api_key or None, drain_timeout=drain_timeout, threads=threads, engine=engine, max_batch_size=max_batch_size, max_queue=max_queue, timeout=timeout,
        max_tokens_limit=max_tokens_limit, poll_interval=poll_interval, max_body_bytes=max_body_bytes,
        access_log=not no_access_log,
    )
    if canary_percent and not canary:
        raise click.UsageError("--canary-percent needs --canary REF")
    from llmos_serve.engines import check_kind

    check_kind(engine)
    run(config)


def _hide_secrets(options: tuple[str, ...]) -> None:
    """Replace the values of secret options in ``sys.argv`` by ``***``: what this
    process records about its command line (e.g. the monitor's serve run) never
    holds a key. (The OS's process list still shows the original: prefer the
    environment variables.) ``options`` are documentation: :func:`llmos.redact.redact_argv`
    masks every option named like a token, key, secret or password."""
    import sys

    from llmos.sdk import redact_argv

    sys.argv[:] = redact_argv(sys.argv)


@click.group("deploy")
def deploy() -> None:
    """Move aliases between versions: promote a version, roll back.

    A server started with 'llmos serve NAME@ALIAS' follows the alias within its
    --poll-interval and switches without failing in-flight requests.

    \b
    Examples:
      llmos deploy promote quickstart:3                 # production -> 3
      llmos deploy promote quickstart@canary --to production
      llmos deploy rollback quickstart                  # production -> what it was before
      llmos deploy status quickstart --json
    """


@deploy.command("promote")
@click.argument("source")
@click.option("--to", "alias", default="production", show_default=True, help="Alias to move.")
@click.option("--require", "require", metavar="RULE", default=None,
              help="Move only if RULE holds, e.g. 'val_ppl <= current.val_ppl' (current = the alias's "
                   "version now; metrics, task metrics, size_bytes, params; and, <, <=, ==, +, *...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def promote(source: str, alias: str, require: str | None, as_json: bool) -> None:
    """Point MODEL@ALIAS at the version SOURCE names (name:N, name@alias or name).

    The alias's previous version is remembered (as alias '<ALIAS>-previous' in the
    registry, shared by every machine) so 'llmos deploy rollback' can restore it.
    With --require the move happens only if the rule holds: otherwise it is refused
    with both numbers, exit status 3, and the alias unchanged. Every decision is
    recorded as a registry event with both versions' metrics.

    \b
    Examples:
      llmos deploy promote quickstart:3 --to production
      llmos deploy promote quickstart:3 --require 'val_ppl <= current.val_ppl'
      llmos deploy promote quickstart:4 --require 'val_ppl < current.val_ppl * 1.01 and size_bytes <= 2e8'
    """
    from llmos_serve.deploy import promote as do

    result = do(source, alias, require=require)
    if as_json:
        _echo_json(result)
    elif result["previous"] == result["version"]:
        click.echo(f"{result['model']}@{alias} already points at version {result['version']}.")
    else:
        was = f" (was {result['previous']})" if result["previous"] is not None else ""
        click.echo(f"{result['model']}@{alias} -> version {result['version']}{was}.")


@deploy.command("rollback")
@click.argument("model")
@click.option("--alias", default="production", show_default=True, help="Alias to roll back.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def rollback(model: str, alias: str, as_json: bool) -> None:
    """Point MODEL@ALIAS back at the version it had before the last promote.

    Rolling back twice returns to where you started (the two versions swap).

    \b
    Example:
      llmos deploy rollback quickstart
    """
    from llmos_serve.deploy import rollback as do

    result = do(model, alias)
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"{model}@{alias} -> version {result['version']} (rolled back from {result['previous']}).")


@deploy.command("status")
@click.argument("model")
@click.option("--alias", default="production", show_default=True, help="Alias to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def status(model: str, alias: str, as_json: bool) -> None:
    """Show which version MODEL@ALIAS points at, and what a rollback would restore.

    \b
    Example:
      llmos deploy status quickstart --json
    """
    from llmos_serve.deploy import status as do

    result = do(model, alias)
    if as_json:
        _echo_json(result)
    else:
        prev = result["previous"] if result["previous"] is not None else "-"
        click.echo(f"{model}@{alias}: version {result['version']}   rollback target: {prev}")


__all__ = ["deploy", "serve"]
