"""Data readers and tokenizer trainers as extension points (``llmos_register_data_readers``,
``llmos_register_tokenizer_trainers``): the built-in csv, parquet and jsonl field readers,
and a third-party CSV reader plugin selected by name in pipelines/tiny.toml."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from llmos.errors import ValidationError
from llmos_data.config import CorpusConfig
from llmos_data.corpus import build_dataset

ROOT = Path(__file__).resolve().parents[3]
WORDS = ("return the value of a list item when the file exists and raise an error if the socket "
         "closes before the module reads every line of text from the stream").split()


def doc(i: int) -> str:
    rng = np.random.default_rng(i)
    return " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=30)).capitalize() + f". Item {i}."


def docs_of(ds) -> list[str]:
    tok = ds.tokenizer()
    out = []
    for split in ("train", "validation"):
        text = tok.decode(np.asarray(ds.split(split)).ravel().tolist(), skip_special_tokens=False)
        out += [d.replace(tok.bos_token, "") for d in text.split(tok.eos_token)]
    return out


def build(tmp_path: Path, **kw):
    kw = {"vocab_size": 300, "block_size": 8, "validation_fraction": 0.2, "near_dedup": False, **kw}
    return build_dataset(CorpusConfig(**kw), cache_root=tmp_path / "cache", workdir=tmp_path / "work")


def test_llmos_register_data_readers_csv_parquet_and_jsonl_field(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [doc(i) for i in range(40)]
    with open(tmp_path / "rows.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "body"])
        w.writerows([[i, t] for i, t in enumerate(texts)])
    pq.write_table(pa.table({"id": list(range(40)), "body": texts}), tmp_path / "rows.parquet", row_group_size=7)
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps({"meta": {"body": t}}) for t in texts))
    by_reader = {}
    for name, field in (("rows.csv", "body"), ("rows.parquet", "body"), ("rows.jsonl", "meta.body")):
        ds = build(tmp_path / f"out-{name}", paths=[str(tmp_path / name)], text_field=field)  # format: by suffix
        by_reader[name] = ds.stats["documents_kept"]
        kept = docs_of(ds)
        assert sum(t in " ".join(kept) for t in texts[:5]) == 5  # the texts of the column, not the ids
    assert set(by_reader.values()) == {40}
    # chosen by name, with the reader's own settings (a ';' delimited file without the .csv suffix)
    (tmp_path / "semi.txt").write_text("body;id\n" + "\n".join(f"{t};{i}" for i, t in enumerate(texts)))
    ds = build(tmp_path / "semi", paths=[str(tmp_path / "semi.txt")], format="csv", text_field="body",
               reader_config={"delimiter": ";"})
    assert ds.stats["documents_kept"] == 40
    with pytest.raises(ValidationError, match="no column 'text'"):
        build(tmp_path / "bad", paths=[str(tmp_path / "rows.parquet")])


def test_llmos_register_data_readers_unknown_reader_and_settings_are_located_errors(standard_plugins) -> None:
    from llmos.pipeline import PipelineError, load_pipeline

    standard_plugins("llmos-data", "llmos-models", "llmos-train")
    tiny = ROOT / "pipelines" / "tiny.toml"
    with pytest.raises(PipelineError, match=r"stages\[0\].config.format: .*no data reader named 'xlsx' "
                                            r"\(available data_readers: csv, jsonl, md, parquet, txt, wikitext;"):
        load_pipeline(tiny, ["stages.data.config.format=xlsx"])
    with pytest.raises(PipelineError, match=r"stages\[0\].config.reader_config: .*delimiter"):
        load_pipeline(tiny, ["stages.data.config.format=csv", "stages.data.config.reader_config={delimiter = '::'}"])
    with pytest.raises(PipelineError, match=r"stages\[0\].config.tokenizer_trainer: .*no tokenizer trainer named 'wordpiece'"):
        load_pipeline(tiny, ["stages.data.config.tokenizer_trainer=wordpiece"])


CSV_PLUGIN = {
    "llmos_csvcol/__init__.py": '''
        """A CSV reader for llmos that picks the text column by position (hook module: light)."""
        from llmos import hookimpl

        LLMOS_API = 2


        @hookimpl
        def llmos_register_data_readers(register):
            from llmos_csvcol.config import CsvColumnConfig

            register("csv-column", "llmos_csvcol.read:read", config=CsvColumnConfig,
                     description="CSV rows; the text is the column at a position")
    ''',
    "llmos_csvcol/config.py": '''
        from pydantic import BaseModel, Field


        class CsvColumnConfig(BaseModel):
            column: int = Field(0, ge=0)
            skip_header: bool = True
    ''',
    "llmos_csvcol/read.py": '''
        import csv


        def read(path, config):
            with open(path, newline="", encoding="utf-8") as fh:
                rows = csv.reader(fh)
                if config.skip_header:
                    next(rows, None)
                for row in rows:
                    if len(row) > config.column and row[config.column].strip():
                        yield row[config.column]
    ''',
}


@pytest.mark.slow
def test_llmos_register_data_readers_plugin_csv_reader_runs_in_tiny_pipeline(standard_plugins, installed_plugin,
                                                                           tmp_path) -> None:
    from llmos.pipeline import load_pipeline, run_pipeline
    from llmos.registry import open_registry

    installed_plugin("llmos-csvcol", CSV_PLUGIN, "llmos_csvcol")
    standard_plugins("llmos-data", "llmos-models", "llmos-train", "llmos-csvcol")
    data = tmp_path / "notes.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note"])
        w.writerows([[i, doc(i) + " " + doc(i + 1000)] for i in range(400)])
    pipe = load_pipeline(ROOT / "pipelines" / "tiny.toml", [
        f"stages.data.config.paths=['{data}']", "stages.data.config.format=csv-column",
        "stages.data.config.reader_config={column = 1}", "stages.data.config.max_bytes=1000000",
        "stages.train.config.max_steps=6", "stages.train.config.eval_every=0", "stages.train.config.checkpoint_every=0"])
    result = run_pipeline(pipe, registry=open_registry())
    assert result.status == "completed", result.error
    data_out = result.stages[0].result
    assert data_out["documents_kept"] == 400  # one per row, from column 1 (not the ids of column 0)
    version = open_registry().resolve(result.versions[0])
    assert version.metrics["val_ppl"] > 1
