"""Request and response bodies of the OpenAI-compatible API (pydantic models).

Fields follow OpenAI's API; fields OpenAI clients may send that this server does
not act on (``user``...) are accepted and ignored, while features it does not
implement (``tools``, ``suffix``, a JSON schema outside the supported subset) are refused with 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_N = Annotated[int, Field(ge=1, le=16, description="How many completions to generate for each prompt.")]


def _utf8(value: str) -> str:
    """JSON may carry lone surrogates (``"\\ud800"``), which are not text: refuse them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the text holds an invalid character at position {exc.start} (a lone UTF-16 surrogate); "
            f"send valid Unicode"
        ) from None
    return value


#: a string that is valid Unicode (every text field of a request)
Text = Annotated[str, AfterValidator(_utf8)]

#: strict types: ``max_tokens: true`` or ``stream: "yes"`` are errors, not 1 and True
_STRICT = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class _Common(BaseModel):
    model_config = _STRICT

    model: Text = Field(description="The served model's id (see GET /v1/models).", examples=["quickstart"])
    max_tokens: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Most tokens to generate (prompt + max_tokens must fit the context)."
    )
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = Field(default=None, description="0 = greedy.")
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = Field(default=None, description="0 or -1 disables top-k.")
    stop: Text | Annotated[list[Text], Field(max_length=4)] | None = Field(
        default=None, description="Up to 4 strings; generation stops before the first one produced."
    )
    seed: int | None = Field(default=None, description="Makes sampling reproducible.")
    n: _N = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[Text, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = Field(
        default=None, description="Token id (as a string) -> bias added to its logit before sampling, -100..100."
    )
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    user: Text | None = None


class JsonSchemaFormat(BaseModel):
    """``response_format.json_schema``: ``schema`` in the subset of :mod:`llmos_serve.grammar`."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: Text | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's ``response_format``: ``text``, or JSON by constrained decoding
    (``json_object``: any object; ``json_schema``: an object of the given schema)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class CompletionRequest(_Common):
    """``POST /v1/completions``."""

    prompt: Text | list[Text] | list[int] | list[list[int]] = Field(
        description="Text, a list of texts, token ids, or a list of token-id lists.", examples=["Once upon a time"]
    )
    echo: bool = False
    suffix: Text | None = None
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = Field(
        default=None, description="Return the log-probability of each token and of this many alternatives."
    )
    best_of: Annotated[int, Field(ge=1, le=16)] | None = Field(
        default=None, description="Generate this many per prompt and return the n with the highest log-probability."
    )
    response_format: ResponseFormat | None = Field(
        default=None, description="Not in OpenAI's legacy API; as in chat (JSON by constrained decoding)."
    )


class ContentPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"] = "text"
    text: Text


class ChatMessage(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatCompletionRequest(_Common):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)] = Field(
        examples=[[{"role": "user", "content": "Say hello."}]]
    )
    tools: Any = None
    tool_choice: Any = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = Field(default=None, description="Return the log-probability of each token.")
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = Field(
        default=None, description="With logprobs: this many most likely alternatives per token."
    )
    response_format: ResponseFormat | None = None


class AliasRequest(BaseModel):
    """``POST /admin/alias``: point ``model@alias`` at ``version``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    alias: Text = Field(min_length=1, max_length=100, examples=["production"])
    version: Annotated[int, Field(ge=1)]
    model: Text | None = Field(default=None, description="Default: the served model's name.")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape."""

    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmos"
    version: str | None = Field(default=None, description="The version now serving this id (name:N).")
    max_model_len: int | None = None
    parent: str | None = Field(default=None, description="For an adapter version: its base version (name:N).")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
