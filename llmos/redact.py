"""Secrets are never stored or shown: the one redaction function of llmos.

Whatever records a command line, a configuration or an environment (the pipeline
runner's run config and summary, the monitor's ``serve`` run, registry events,
version lineage) passes it through :func:`redact` first; the registry applies it
again to everything it writes into runs and events, so no caller can forget.

What counts as a secret:

- a value whose *name* (an option, a setting, an environment variable, a dict
  key) has a word ``token``, ``secret``, ``password``/``passwd``/``pwd``,
  ``credential(s)``, ``apikey``/``api_key`` or ``key`` — split into words at
  ``_``, ``-``, ``.`` and camelCase, so ``--admin-token``, ``LLMOS_API_KEY``,
  ``hfToken`` and ``db.password`` are secrets, while ``max_tokens``, ``tokenizer``,
  ``eos_token`` (a special token, not a credential) and ``text_key`` (a column
  name) are not;
- the password inside a URL (``postgresql://user:pw@host/db``), wherever it
  appears in a string.

Both are replaced by :data:`MASK` (``***``). Redaction is one-way: a resumed run
whose settings held a secret must be given it again (see :func:`masked_paths`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: what a secret is shown as
MASK = "***"

_SECRET_WORDS = frozenset({"token", "secret", "secrets", "password", "passwd", "passphrase",
                           "credential", "credentials", "apikey", "bearer", "auth", "authorization",
                           "cookie", "key"})
#: words before ``token`` that make it a vocabulary item, not a credential
_VOCAB_TOKEN = frozenset({"eos", "bos", "pad", "unk", "sep", "cls", "mask", "special", "start", "end", "stop",
                          "image", "audio", "video", "max", "min", "num", "first", "last", "next"})
#: words before ``key`` that make it a field name, not a credential
_FIELD_KEY = frozenset({"text", "sort", "column", "col", "field", "label", "metric", "group", "primary",
                        "foreign", "input", "target", "cache", "dict", "json", "prompt", "join", "partition",
                        "hash", "lookup", "public", "message", "answer", "image", "audio", "item", "record",
                        "row", "data", "name", "value", "id", "index", "map", "sample", "split", "feature",
                        "context", "response", "completion", "question", "document", "doc", "chosen",
                        "rejected", "source", "dedup", "shard", "seed"})
#: words after ``token``/``key`` that make the whole a count or an identifier of a vocabulary item
_NOT_SECRET_AFTER = frozenset({"id", "ids", "count", "counts", "len", "length", "type", "types", "file", "path",
                               "dir", "fn", "func", "name", "names"})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# scheme://user:password@host  (the user part may be empty: redis://:pw@host)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)([^\s@/]+)(@)")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_name(name: Any) -> bool:
    """Whether a setting, option or variable of this name holds a secret."""
    if not isinstance(name, str):
        return False
    words = _words(name.lstrip("-"))
    for i, word in enumerate(words):
        if word not in _SECRET_WORDS:
            continue
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if after in _NOT_SECRET_AFTER and word in ("token", "key"):
            continue
        if word == "token" and before in _VOCAB_TOKEN:
            continue
        if word == "key" and before in _FIELD_KEY:
            continue
        if word == "auth" and after in ("mode", "type", "method", "required", "enabled"):
            continue
        return True
    return False


def redact_text(text: str) -> str:
    """``text`` with every password inside a URL replaced by ``***``."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)


def _mask(value: Any) -> Any:
    if value is None or value == "" or isinstance(value, bool):
        return value  # "not set" is not a secret, and hiding it would hide that
    return MASK


def redact_argv(argv: list[Any] | tuple[Any, ...]) -> list[Any]:
    """A command line with the values of secret options masked:
    ``--admin-token X``, ``--admin-token=X``, ``KEY=VALUE`` with a secret KEY
    (``--set stages.x.config.api_key=...``, ``env LLMOS_API_KEY=...``), URL passwords."""
    out: list[Any] = []
    hide_next = False
    for arg in argv:
        if not isinstance(arg, str):
            out.append(redact(arg))
            hide_next = False
            continue
        if hide_next and not arg.startswith("-"):
            out.append(MASK)
            hide_next = False
            continue
        hide_next = False
        if "=" in arg:
            name, _, value = arg.partition("=")
            if is_secret_name(name.rsplit(".", 1)[-1]) or is_secret_name(name):
                out.append(f"{name}={_mask(value) if value else value}")
                continue
        elif arg.startswith("-") and is_secret_name(arg):
            hide_next = True
        out.append(redact_text(arg))
    return out


def redact(value: Any, name: Any = None) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with every secret masked.

    :param name: the name ``value`` is stored under, if any (a dict key, an option).
    """
    if name is not None and is_secret_name(name) and not isinstance(value, (Mapping, list, tuple)):
        return _mask(value)
    if isinstance(value, Mapping):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, str) and v.startswith("-") for v in value):
            return redact_argv(list(value))
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Environment variables with secret ones (``*_TOKEN``, ``*_API_KEY``, URLs with passwords) masked."""
    return {k: (_mask(v) if is_secret_name(k) else redact_text(v)) for k, v in env.items()}


def masked_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the masked values in ``value`` (``["stages.serve.config.api_key"]``):
    what a resumed run must be given again."""
    out: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            out += masked_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            key = v.get("id") if isinstance(v, Mapping) and isinstance(v.get("id"), str) else str(i)
            out += masked_paths(v, f"{prefix}.{key}" if prefix else key)
    elif value == MASK or (isinstance(value, str) and f":{MASK}@" in value):
        out.append(prefix)
    return out
