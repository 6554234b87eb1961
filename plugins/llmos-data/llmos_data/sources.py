"""Where documents come from: files, folders, globs, and the offline default corpus.

Every reader *streams*: it yields one document (a ``str``) at a time and never holds a
whole file in memory (a .txt file bigger than :data:`MAX_DOC_CHARS` is cut into
documents at paragraph boundaries), so corpora larger than RAM work.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llmos.sdk import NotFoundError, ValidationError

#: extensions picked up when a folder is searched
KNOWN_SUFFIXES = {".txt": "txt", ".md": "md", ".markdown": "md", ".jsonl": "jsonl", ".raw": "wikitext", ".tokens": "wikitext"}
#: a plain-text document is cut at a paragraph boundary once it reaches this size
MAX_DOC_CHARS = 1_000_000
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One input file and the format it is read with."""

    path: Path
    format: str  # the data reader's name (txt, md, jsonl, wikitext, csv, parquet, a plugin's), or python

    @property
    def size(self) -> int:
        return self.path.stat().st_size


# ---------------------------------------------------------------------------
# resolving paths, folders and globs
# ---------------------------------------------------------------------------


def resolve_sources(paths: Iterable[str], fmt: str = "auto", readers: Iterable[str] = ()) -> list[SourceFile]:
    """Expand files, folders (recursive) and glob patterns into an ordered list of files.

    :param readers: names of the installed data readers: a reader named ``x`` reads ``.x``
        files when ``fmt`` is ``auto`` (besides the built-in suffixes).
    :raises NotFoundError: a path does not exist or a pattern/folder matches no text file.
    """
    suffixes = {**{f".{r}": r for r in readers}, **KNOWN_SUFFIXES}
    out: list[SourceFile] = []
    seen: set[Path] = set()
    for raw in paths:
        text = os.path.expanduser(str(raw))
        if glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise NotFoundError(f"data path pattern {raw!r} matches no file: check the pattern")
        else:
            p = Path(text)
            if not p.exists():
                raise NotFoundError(f"data path {raw!r} does not exist: fix the path in the corpus 'paths' setting")
            if p.is_dir():
                files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
                if not files:
                    raise NotFoundError(
                        f"folder {raw!r} holds no file a data reader reads ({', '.join(sorted(suffixes))})"
                    )
            else:
                files = [p]
        for f in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            out.append(SourceFile(f, _format_of(f, fmt, suffixes)))
    return out


def _format_of(path: Path, fmt: str, suffixes: dict[str, str] | None = None) -> str:
    if fmt != "auto":
        return fmt
    kind = (suffixes or KNOWN_SUFFIXES).get(path.suffix.lower(), "txt")
    if kind == "txt" and _looks_like_wikitext(path):
        return "wikitext"
    return kind


_WIKI_HEADING = re.compile(r"^ ?((?:= )+)(.+?)(?: =)+ ?$")


def _looks_like_wikitext(path: Path) -> bool:
    """WikiText raw files start with blank lines and ' = Title = ' headings."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            head = [line.rstrip("\n") for _, line in zip(range(50), fh)]
    except OSError:
        return False
    headings = [h for h in head if _WIKI_HEADING.match(h)]
    return bool(headings) and (" @-@ " in "\n".join(head) or head[0].strip() == "" or len(headings) >= 2)


def corpus_sha256(files: list[SourceFile], extra: str = "") -> str:
    """sha256 over the files' formats and contents (not their location), streamed."""
    h = hashlib.sha256(f"llmos-corpus-v1\0{extra}\0".encode())
    for sf in files:
        h.update(f"{sf.format}\0{sf.size}\0".encode())
        with sf.path.open("rb") as fh:
            while chunk := fh.read(_READ_CHUNK):
                h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# readers (one per format)
# ---------------------------------------------------------------------------


def iter_file(sf: SourceFile, *, text_field: str = "text", split_paragraphs: bool = False,
              reader_config: dict | None = None) -> Iterator[str]:
    """Yield the documents of one file, read by the data reader named ``sf.format``
    (looked up through the plugin manager: ``llmos_register_data_readers``).

    The reader's config gets ``text_field`` / ``split_paragraphs`` when its model declares
    them, then ``reader_config``.
    """
    from llmos.sdk import get_manager

    ext = get_manager().get_extension("data_readers", sf.format)
    settings = None
    if ext.config is not None:
        shared = {"text_field": text_field, "split_paragraphs": split_paragraphs}
        settings = {k: v for k, v in shared.items() if k in ext.config.model_fields}
        settings.update(reader_config or {})
    yield from ext.load_factory()(sf.path, ext.validate_config(settings))


def _open_text(path: Path) -> io.TextIOWrapper:
    return path.open("r", encoding="utf-8", errors="replace", newline=None)


def _iter_text(path: Path, split_paragraphs: bool) -> Iterator[str]:
    """Whole file as one document (or one per paragraph); huge files are cut at
    paragraph boundaries every ~MAX_DOC_CHARS characters."""
    buf: list[str] = []
    size = 0
    with _open_text(path) as fh:
        for line in fh:
            if not line.strip():
                if split_paragraphs or size >= MAX_DOC_CHARS:
                    if buf:
                        yield "".join(buf)
                    buf, size = [], 0
                    continue
            buf.append(line)
            size += len(line)
            if size >= 4 * MAX_DOC_CHARS:  # a huge file without blank lines
                yield "".join(buf)
                buf, size = [], 0
    if buf:
        yield "".join(buf)


def _iter_jsonl(path: Path, text_field: str) -> Iterator[str]:
    keys = text_field.split(".")
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValidationError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one JSON object") from None
            value = record
            for key in keys:
                if not isinstance(value, dict) or key not in value:
                    raise ValidationError(
                        f"{path}:{lineno}: record has no field {text_field!r}; set the corpus 'text_field' "
                        f"to the field holding the text"
                    )
                value = value[key]
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValidationError(f"{path}:{lineno}: field {text_field!r} is a {type(value).__name__}, not text")
            yield value


_WIKI_FIXES = [
    (re.compile(r" @(.)@ "), r"\1"),  # 1 @,@ 000 -> 1,000 ; state @-@ of -> state-of
    (re.compile(r" ([.,;:!?)\]}%])"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r" (n't|'t|'s|'re|'ve|'m|'ll|'d)\b"), r"\1"),
    (re.compile(r'" (.*?) "'), r'"\1"'),
]


def detokenize_wikitext(line: str) -> str:
    """Undo WikiText's tokenisation of one line (`` @-@ ``, spaces before punctuation)."""
    m = _WIKI_HEADING.match(line.rstrip("\n"))
    if m:
        return m.group(2).strip() + "\n"
    out = line
    for pattern, repl in _WIKI_FIXES:
        out = pattern.sub(repl, out)
    out = out.strip()
    return out + "\n" if out else "\n"


def _iter_wikitext(path: Path) -> Iterator[str]:
    """One document per article: articles start at a level-1 heading `` = Title = ``."""
    buf: list[str] = []
    size = 0
    with _open_text(path) as fh:
        for line in fh:
            m = _WIKI_HEADING.match(line.rstrip("\n"))
            if (m and m.group(1).count("=") == 1 and buf) or size >= 4 * MAX_DOC_CHARS:
                yield "".join(buf)
                buf, size = [], 0
            text = detokenize_wikitext(line)
            if text.strip() or (buf and buf[-1].strip()):
                buf.append(text)
                size += len(text)
    if buf:
        yield "".join(buf)


# ---------------------------------------------------------------------------
# the default corpus: prose from the Python standard library
# ---------------------------------------------------------------------------

_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "turtledemo"}


def stdlib_root() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[SourceFile]:
    """The stdlib's ``.py`` files (tests excluded), in a fixed pseudo-random order
    (by hash of the relative path) so that a size limit takes a sample of every package."""
    root = stdlib_root()
    files = [
        p
        for p in root.rglob("*.py")
        if not (_SKIP_DIRS & set(p.relative_to(root).parts[:-1])) and p.is_file()
    ]
    files.sort(key=lambda p: hashlib.sha256(p.relative_to(root).as_posix().encode()).hexdigest())
    return [SourceFile(p, "python") for p in files]


def stdlib_fingerprint() -> str:
    return f"stdlib:{sys.version_info.major}.{sys.version_info.minor}"


_DOCTEST = re.compile(r"^\s*(>>>|\.\.\.)")


def _prose(text: str) -> str | None:
    """Keep the prose of a docstring: drop doctest examples and code-looking text."""
    lines: list[str] = []
    in_example = False
    for line in text.splitlines():
        if _DOCTEST.match(line):
            in_example = True
            continue
        if in_example:
            if not line.strip():
                in_example = False
            continue
        lines.append(line)
    out = "\n".join(lines).strip()
    if len(out.split()) < 5:
        return None
    letters = sum(c.isalpha() or c.isspace() for c in out)
    if letters / max(len(out), 1) < 0.8:
        return None
    return out


def iter_python_file(path: Path, parts: Iterable[str]) -> Iterator[str]:
    """Yield the prose docstrings and/or comment blocks of one Python file."""
    import ast
    import tokenize

    parts = set(parts)
    try:
        source = path.read_bytes()
    except OSError:
        return
    if "docstrings" in parts:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            tree = None
        if tree is not None:
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=True)
                    if doc and (prose := _prose(doc)):
                        yield prose
    if "comments" in parts:
        block: list[str] = []
        last_row = -2
        try:
            for tok in tokenize.tokenize(io.BytesIO(source).readline):
                if tok.type != tokenize.COMMENT:
                    continue
                text = tok.string.lstrip("#").strip()
                if text.startswith(("!", "-*-", "noqa", "type:", "pragma", "fmt:")):
                    continue
                if tok.start[0] != last_row + 1 and block:
                    if (prose := _prose(" ".join(block))) is not None and len(block) >= 2:
                        yield prose
                    block = []
                block.append(text)
                last_row = tok.start[0]
        except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
            pass
        if block and len(block) >= 2 and (prose := _prose(" ".join(block))) is not None:
            yield prose
