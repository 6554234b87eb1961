"""The data readers llmos-data registers (``llmos_register_data_readers``).

A reader is ``factory(path, config) -> Iterator[str]``: the documents of one file,
read lazily (never the whole file at once where the format allows it). ``config`` is
an instance of the reader's registered pydantic model; ``data.corpus`` fills the
fields it shares with the corpus settings (``text_field``, ``split_paragraphs``) from
there and the rest from ``reader_config``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmos.sdk import ValidationError

from llmos_data.sources import _iter_jsonl, _iter_text, _iter_wikitext, _open_text


def read_text(path: Path, config: Any) -> Iterator[str]:
    """.txt and .md: the whole file (or each paragraph) is a document."""
    return _iter_text(Path(path), config.split_paragraphs)


def read_jsonl(path: Path, config: Any) -> Iterator[str]:
    """One document per JSON line, from the field ``text_field`` (dots for nesting)."""
    return _iter_jsonl(Path(path), config.text_field)


def read_wikitext(path: Path, config: Any) -> Iterator[str]:
    """WikiText raw files: one document per article, detokenised."""
    return _iter_wikitext(Path(path))


def read_csv(path: Path, config: Any) -> Iterator[str]:
    """One document per row, from the column ``text_field`` (by header name)."""
    path = Path(path)
    csv.field_size_limit(1 << 30)
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=config.delimiter)
        if reader.fieldnames is None:
            return
        if config.text_field not in reader.fieldnames:
            raise ValidationError(
                f"{path}: no column {config.text_field!r} (columns: {', '.join(reader.fieldnames)}); set the "
                f"corpus 'text_field' to the column holding the text"
            )
        for row in reader:
            value = row.get(config.text_field)
            if value:
                yield value


def read_parquet(path: Path, config: Any) -> Iterator[str]:
    """One document per row of the string column ``text_field``, read a row group at a time."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency of llmos-data
        raise ValidationError("reading .parquet needs pyarrow: pip install pyarrow") from None
    path = Path(path)
    try:
        pf = pq.ParquetFile(str(path))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types
        raise ValidationError(f"{path}: not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    if config.text_field not in names:
        raise ValidationError(
            f"{path}: no column {config.text_field!r} (columns: {', '.join(names)}); set the corpus "
            f"'text_field' to the column holding the text"
        )
    for i in range(pf.num_row_groups):
        column = pf.read_row_group(i, columns=[config.text_field]).column(0)
        for value in column.to_pylist():
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValidationError(f"{path}: column {config.text_field!r} holds {type(value).__name__}, not text")
            yield value
