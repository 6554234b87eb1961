"""Rebuild the shipped tasks, deterministically, offline: ``stdlib_docstrings`` (multiple
choice) and ``stdlib_completion`` (generation).

Documents are the Python standard library's prose docstrings exactly as
``data.corpus`` reads and cleans them, kept only when they fall in the corpus's
held-out validation split (document hash below 5%, the quickstart's
``validation_fraction``): a model trained by the quickstart never saw them. An item
is the first sentence of a docstring (the context) and four candidate next
sentences: the true one and the next sentences of three other held-out docstrings,
in a seeded random order. A ``stdlib_completion`` item is the first half of the words
of another held-out docstring's first sentence (the prompt) and the rest of it, without
its final stop (the target: generation stops at a newline or a period).

    python plugins/llmos-models/llmos_models/tasks_data/build_stdlib_task.py [--items 200] [--completions 100]

The same interpreter version (its stdlib) gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "stdlib_docstrings"
COMPLETION = Path(__file__).resolve().parent / "stdlib_completion"
COMPLETION_VERSION = "1.0"
COMPLETION_YAML = """# lm-eval-harness task (generation), local data only; rebuilt by ../build_stdlib_task.py
task: stdlib_completion
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: ["\\n", "."]
  max_gen_toks: 24
  do_sample: false
metric_list:
  - metric: exact_match
    ignore_case: true
    ignore_punctuation: true
    regexes_to_ignore: ["^\\\\s+", "\\\\s+$"]
  - metric: bleu
  - metric: chrf
metadata:
  version: {version}
  source: "Python {python} standard library docstrings (PSF-2.0), held-out validation documents of data.corpus"
"""
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
VERSION = "1.0"
YAML = """# lm-eval-harness task (multiple choice), local data only; rebuilt by ../build_stdlib_task.py
task: stdlib_docstrings
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: {version}
  source: "Python {python} standard library docstrings (PSF-2.0), held-out validation documents of data.corpus"
"""


def sentences(doc: str) -> list[str]:
    flat = " ".join(doc.split())
    return [s for s in SENTENCE.split(flat) if 20 <= len(s) <= 200]


def held_out_docs() -> list[list[str]]:
    """The held-out docstrings' sentences, in the stdlib's file order."""
    from llmos_data.clean import clean_text, doc_hash, is_validation
    from llmos_data.sources import iter_python_file, stdlib_files

    held_out, seen = [], set()
    for sf in stdlib_files():
        for raw in iter_python_file(sf.path, ["docstrings"]):
            text = clean_text(raw)
            digest = doc_hash(text)
            if digest in seen or not is_validation(digest, 0.05):
                continue
            seen.add(digest)
            parts = sentences(text)
            if parts:
                held_out.append(parts)
    return held_out


def build_completions(n_items: int, seed: int = 1) -> list[dict]:
    """Prompt: the first half of a first sentence's words; target: the rest, without its final '.'."""
    docs = held_out_docs()
    random.Random(seed).shuffle(docs)
    items, seen = [], set()
    for parts in docs:
        first = parts[0]
        if len(items) >= n_items or not first.endswith(".") or "\n" in first or first in seen:
            continue
        words = first[:-1].split(" ")
        if not 6 <= len(words) <= 16 or "." in first[:-1]:
            continue
        seen.add(first)
        cut = len(words) // 2
        items.append({"prompt": " ".join(words[:cut]), "target": " " + " ".join(words[cut:])})
    return items


def build(n_items: int, seed: int = 0) -> list[dict]:
    """Context: a docstring's first sentence; choices: its second and three others'."""
    held_out = [parts for parts in held_out_docs() if len(parts) >= 2]
    rng = random.Random(seed)
    rng.shuffle(held_out)
    items = []
    for i, parts in enumerate(held_out):
        if len(items) >= n_items:
            break
        others = [held_out[(i + k) % len(held_out)][1] for k in (1, 2, 3)]
        if parts[1] in others or len(set(others)) < 3:
            continue
        choices = [parts[1], *others]
        rng.shuffle(choices)
        items.append({"context": parts[0], "choices": choices, "gold": choices.index(parts[1])})
    return items


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--completions", type=int, default=100)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--completion-out", type=Path, default=COMPLETION)
    args = ap.parse_args(argv)
    python = ".".join(map(str, sys.version_info[:2]))
    done = build_completions(args.completions)
    args.completion_out.mkdir(parents=True, exist_ok=True)
    (args.completion_out / "test.jsonl").write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in done))
    (args.completion_out / "stdlib_completion.yaml").write_text(
        COMPLETION_YAML.format(data="test.jsonl", version=COMPLETION_VERSION, python=python))
    print(f"{len(done)} completion items -> {args.completion_out}")
    items = build(args.items)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "test.jsonl").write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items))
    (args.out / "stdlib_docstrings.yaml").write_text(YAML.format(data="test.jsonl", version=VERSION, python=python))
    print(f"{len(items)} items -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
