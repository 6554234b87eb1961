"""Chat templates: the one default, and conversations as training examples.

:data:`DEFAULT_CHAT_TEMPLATE` is the template a model gets when its tokenizer has
none — at training time (``data.chat``) and for serving, so a chat-tuned model is
prompted exactly as it was trained. It is stored with the tokenizer as Hugging Face
does (``tokenizer_config.json`` ``chat_template``). Rendered::

    <|system|>
    Be brief.
    <|user|>
    What is 2+2?
    <|assistant|>
    4<|eos|>

Every message is ``<|role|>\\n content \\n``, except that an assistant turn ends with
the end-of-sequence token instead of the newline: the model learns to stop there,
and generation from ``add_generation_prompt`` (``<|assistant|>\\n``) stops there.

:func:`encode_chat` turns a conversation into ``(input_ids, labels)`` with the loss
on the assistant turns only (their content and closing end-of-sequence token);
system and user turns, and the template's own markup, are labelled ``-100``.
"""

from __future__ import annotations

from typing import Any

from llmos.sdk import ValidationError

# newlines as Jinja string escapes: Hugging Face renders with trim_blocks, which drops a
# literal newline right after a block tag
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
ROLES = ("system", "user", "assistant")
IGNORE = -100


def check_messages(messages: Any, where: str = "messages") -> list[dict[str, str]]:
    """``messages`` as a list of ``{"role", "content"}`` with known roles, or a located error."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError(f"{where}: must be a non-empty list of {{'role', 'content'}} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise ValidationError(
                f"{where}[{i}]: each message needs a role ({', '.join(ROLES)}) and a string content"
            )
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise ValidationError(f"{where}: no assistant message, so nothing to learn from")
    return out


def template_of(tokenizer: Any, template: str | None = None) -> str:
    """The template to use: ``template``, else the tokenizer's own, else the default."""
    return template or getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE


def with_chat_template(tokenizer: Any, template: str | None = None) -> Any:
    """Give ``tokenizer`` its chat template for saving (``template``, its own, else
    :data:`DEFAULT_CHAT_TEMPLATE`), so ``save_pretrained`` writes it to
    ``tokenizer_config.json`` and ``apply_chat_template`` works wherever it is loaded.
    Every saved tokenizer (data stage, registered versions, exports) goes through here."""
    if tokenizer is not None:
        tokenizer.chat_template = template_of(tokenizer, template)
    return tokenizer


def render(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None, *,
           add_generation_prompt: bool = False) -> str:
    if not messages and not add_generation_prompt:
        return ""
    return tokenizer.apply_chat_template(messages, chat_template=template_of(tokenizer, template), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def pieces(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None) -> list[tuple[str, bool]]:
    """The rendered conversation cut into ``(text, trained)`` pieces: an assistant turn's
    header (``<|assistant|>\\n``) is not trained, its content and closing token are."""
    out: list[tuple[str, bool]] = []
    done = ""
    for k, m in enumerate(messages):
        upto = render(tokenizer, messages[: k + 1], template)
        if m["role"] == "assistant":
            head = render(tokenizer, messages[:k], template, add_generation_prompt=True)
            if not (head.startswith(done) and upto.startswith(head)):
                raise ValidationError(
                    "the chat template does not render a conversation as a growing prefix (its generation prompt "
                    "is not where the assistant's message starts): the loss mask cannot be placed; use a template "
                    "whose rendering of messages[:k] is a prefix of messages[:k+1]"
                )
            out += [(head[len(done):], False), (upto[len(head):], True)]
        else:
            if not upto.startswith(done):
                raise ValidationError("the chat template does not render a conversation as a growing prefix")
            out.append((upto[len(done):], False))
        done = upto
    return [(t, trained) for t, trained in out if t]


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None, *,
                bos: bool = True) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a conversation; ``labels`` are the ids on assistant
    turns and ``-100`` elsewhere (with a leading ``bos`` token when the tokenizer has one)."""
    ids: list[int] = []
    labels: list[int] = []
    if bos and getattr(tokenizer, "bos_token_id", None) is not None:
        ids.append(int(tokenizer.bos_token_id))
        labels.append(IGNORE)
    for text, trained in pieces(tokenizer, messages, template):
        toks = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += toks
        labels += toks if trained else [IGNORE] * len(toks)
    return ids, labels


def encode_prompt(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None, *,
                  bos: bool = True) -> list[int]:
    """The ids a model trained with :func:`encode_chat` sees before its reply: the
    conversation, then the generation prompt, tokenized piece by piece exactly as in
    training (a server's chat prompt). Templates that do not render a growing prefix
    are tokenized whole, as Hugging Face's ``apply_chat_template(tokenize=True)`` does."""
    ids: list[int] = []
    if bos and getattr(tokenizer, "bos_token_id", None) is not None:
        ids.append(int(tokenizer.bos_token_id))
    try:
        parts = pieces(tokenizer, [*messages, {"role": "assistant", "content": ""}], template)
    except ValidationError:
        text = render(tokenizer, messages, template, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    if parts and parts[-1][1]:
        parts = parts[:-1]  # the empty reply's closing token: the model is to write it
    for text, _ in parts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids
