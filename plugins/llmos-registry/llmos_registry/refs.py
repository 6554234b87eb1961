"""References and validation: model names, aliases, refs, tags, metrics, version numbers."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

# whole-string patterns (``fullmatch``: a ``$`` would also match before a final newline)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
ALIAS_RE = re.compile(r"[A-Za-z0-9_\-]{1,128}")
KEY_RE = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")
RESERVED_ALIAS = re.compile(r"latest|v\d+")
from llmos.sdk import PICKLE_SUFFIXES  # noqa: E402,F401 - one list for the registry and the model plugin
STATUSES = ("ready", "archived", "deleted")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _why_bad(value: str) -> str:
    if _CONTROL.search(value):
        return " (it contains a control character, e.g. a newline)"
    return ""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid model name {name!r}{_why_bad(name) if isinstance(name, str) else ''}: use 1-128 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias):
        raise ValidationError(
            f"invalid alias {alias!r}{_why_bad(alias) if isinstance(alias, str) else ''}: use 1-128 letters, "
            "digits, '_' or '-' (e.g. production)"
        )
    if RESERVED_ALIAS.fullmatch(alias):
        raise ValidationError(
            f"alias {alias!r} is reserved ('latest' and 'v<N>' always mean the newest and version N): pick another name"
        )
    return alias


def parse_ref(ref: str) -> tuple[str, str, str | int | None]:
    """Split a reference: ``name`` → ``(name, "latest", None)``, ``name:3`` →
    ``(name, "number", 3)``, ``name@production`` → ``(name, "alias", "production")``
    (``name@latest`` and ``name@v3`` are accepted too)."""
    if not isinstance(ref, str) or not ref:
        raise ValidationError(f"invalid model reference {ref!r}: use NAME, NAME:VERSION or NAME@ALIAS")
    hint = "use NAME, NAME:VERSION (e.g. quickstart:2) or NAME@ALIAS (e.g. quickstart@production)"
    if "@" in ref:
        name, _, alias = ref.partition("@")
        check_name_in_ref(name, ref, hint)
        if alias == "latest":
            return name, "latest", None
        m = re.fullmatch(r"v(\d+)", alias)
        if m:
            return name, "number", int(m.group(1))
        if not ALIAS_RE.fullmatch(alias or ""):
            raise ValidationError(f"invalid model reference {ref!r}: bad alias {alias!r}{_why_bad(alias)}; {hint}")
        return name, "alias", alias
    if ":" in ref:
        name, _, num = ref.partition(":")
        check_name_in_ref(name, ref, hint)
        if num == "latest":
            return name, "latest", None
        if not re.fullmatch(r"[0-9]{1,18}", num) or int(num) < 1:
            raise ValidationError(f"invalid model reference {ref!r}: version must be a positive integer; {hint}")
        return name, "number", int(num)
    check_name_in_ref(ref, ref, hint)
    return ref, "latest", None


def check_name_in_ref(name: str, ref: str, hint: str) -> None:
    if not NAME_RE.fullmatch(name or ""):
        raise ValidationError(f"invalid model reference {ref!r}: bad model name {name!r}{_why_bad(name or '')}; {hint}")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _check_json(value: Any, what: str) -> Any:
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} must be JSON-serialisable: {exc}") from exc
    return value


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in dict(metrics or {}).items():
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ValidationError(f"invalid metric name {key!r}: use letters, digits, '_', '.', '-' or '/'")
        try:
            val = float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"metric {key!r} must be a number, got {value!r}") from exc
        if not math.isfinite(val):
            raise ValidationError(f"metric {key!r} must be finite, got {val}")
        out[key] = val
    return out


#: the longest tag value (characters): tags are indexed by (key, value) for search, and a
#: PostgreSQL B-tree entry holds at most ~2.7 kB
MAX_TAG_VALUE = 500


def _check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in dict(tags or {}).items():
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ValidationError(f"invalid tag key {key!r}: use letters, digits, '_', '.', '-' or '/'")
        if value is None or isinstance(value, (dict, list)):
            raise ValidationError(f"tag {key!r} needs a text value, got {value!r}")
        text = str(value)
        if len(text) > MAX_TAG_VALUE:
            raise ValidationError(f"tag {key!r} is {len(text)} characters long; tag values are at most "
                                  f"{MAX_TAG_VALUE} (they are indexed for search): keep longer text in the "
                                  f"version's description or in a file of the version")
        out[key] = text
    return out


def _version_number(name: str, version: int | str) -> int:
    if isinstance(version, bool):
        raise ValidationError(f"invalid version {version!r}")
    if isinstance(version, int):
        number = version
    else:
        text = str(version)
        if text.startswith(f"{name}:"):
            text = text[len(name) + 1 :]
        text = text.removeprefix("v")
        if not re.fullmatch(r"[0-9]{1,18}", text):
            raise ValidationError(f"invalid version {version!r}: give a version number such as 3")
        number = int(text)
    if number < 1:
        raise ValidationError(f"invalid version {version!r}: version numbers start at 1")
    return number


def _no_model(s: Any, name: str) -> None:
    """Raise the not-found error for ``name``, pointing at a model differing only in case."""
    from sqlalchemy import select

    from llmos_registry.models import Model, name_key

    other = s.scalar(select(Model.name).where(Model.name_key == name_key(name)))
    hint = f"; did you mean {other!r}? (names are unique case-insensitively)" if other else " (see: llmos model list)"
    raise NotFoundError(f"no model named {name!r}{hint}")

