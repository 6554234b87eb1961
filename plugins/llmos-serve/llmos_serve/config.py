"""Settings of a server (the CLI options, and the ``deployment.openai-server`` config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ServeConfig(BaseModel):
    """How to serve a model over the OpenAI-compatible HTTP API."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="",
        description="What to serve: 'name', 'name:N', 'name@alias' or a model directory "
        "(in a pipeline, empty means the version the run just registered)",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on (0.0.0.0 for every interface)")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0 picks a free one)")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes sharing the port")
    canary: str | None = Field(default=None, description="A second model spec that gets canary_percent of requests")
    canary_percent: float = Field(default=0.0, ge=0.0, le=100.0, description="Share of requests for the canary (%)")
    also: list[str] = Field(
        default_factory=list,
        description="More versions served by this server, each chosen by requests naming it ('name:N', "
        "'name@alias'); adapter versions of one base share one loaded base",
    )
    device: str = Field(
        default="auto",
        description="Where versions run: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps; under auto a "
        "version's tag device=... decides",
    )
    precision: str = Field(
        default="auto",
        description="auto (bf16 on CUDA GPUs that support it, else fp32), fp32, bf16 or fp16; under auto a "
        "version's tag precision=... decides",
    )
    admin_token: str | None = Field(
        default=None, repr=False, description="Bearer token for /admin/* endpoints (they are off without one)"
    )
    api_key: str | None = Field(
        default=None, repr=False,
        description="Bearer key every /v1/* request must send (OpenAI-style); default: $LLMOS_API_KEY, else none",
    )
    drain_timeout: float = Field(
        default=30.0, ge=0, description="Seconds in-flight requests get to finish on SIGTERM/Ctrl-C before they are cut"
    )
    threads: int | None = Field(
        default=None, ge=1, le=256,
        description="torch threads per server process (default: torch's choice; with workers, cores / workers)",
    )
    engine: str = Field(
        default="auto", pattern=r"^[a-z][a-z0-9_-]*$",
        description="Serving engine: auto (ONNX Runtime where its output is the same, else PyTorch), eager "
        "(PyTorch), ort (ONNX Runtime; exports a PyTorch version once), or one a plugin registers",
    )
    max_batch_size: int = Field(default=16, ge=1, le=1024, description="Most sequences decoded in one forward pass")
    max_queue: int = Field(default=64, ge=0, description="Most sequences waiting for a slot before 429")
    timeout: float = Field(default=300.0, gt=0, description="Seconds a request may take before 504")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body accepted (else 413)")
    max_tokens_limit: int | None = Field(
        default=None, ge=1, description="Largest max_tokens a request may ask for (default: the context length)"
    )
    default_max_tokens: int = Field(default=16, ge=1, description="max_tokens of /v1/completions when not given")
    poll_interval: float = Field(default=2.0, ge=0, description="Seconds between alias checks (0: never)")
    routing_seed: int | None = Field(default=None, description="Seed of the canary split (deterministic routing)")
    access_log: bool = Field(default=True, description="Log one line per request")
    block: bool = Field(
        default=True, description="In a pipeline: serve until interrupted (false: start in the background)"
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        from llmos.sdk import check_device_name

        return check_device_name(value)

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        from llmos.sdk import PRECISIONS

        if value not in PRECISIONS:
            raise ValueError(f"unknown precision {value!r}: use {', '.join(PRECISIONS)}")
        return value
