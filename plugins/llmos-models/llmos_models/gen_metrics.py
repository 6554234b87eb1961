"""Generation metrics: score a task's generated texts against its references.

Registered through ``llmos_register_eval_metrics`` (so a generation task's
``metric_list`` selects them by name, with their options validated); each factory
returns a :class:`GenerationMetric`, called once per task on the whole corpus as
``metric(predictions, references) -> float`` (``references``: one string per
prediction). The names and options are lm-eval-harness's, so the same task YAML
gives the same numbers there:

- ``exact_match`` — the share of predictions equal to their reference after the
  options' normalisation, applied in lm-eval's order: ``regexes_to_ignore`` (each
  removed from both), ``ignore_case``, ``ignore_punctuation`` (ASCII punctuation),
  ``ignore_numbers`` (digits);
- ``bleu`` — corpus BLEU-4 as sacrebleu computes it (``13a`` tokenization, brevity
  penalty, exponential smoothing of zero counts), 0-100; n-gram counts are summed over
  the corpus, so short outputs count (alone, one under 4 tokens scores 0);
- ``chrf`` — corpus chrF (character 6-grams, β = 2) as sacrebleu computes it, 0-100.
"""

from __future__ import annotations

import re
import string
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GenerationMetric:
    """A corpus-level metric of generated text (what generation tasks accept)."""

    scores = "generations"  # multiple-choice metrics are plain functions of log-likelihoods

    def __init__(self, name: str, fn: Any) -> None:
        self.name, self.fn = name, fn

    def __call__(self, predictions: list[str], references: list[str]) -> float:
        if len(predictions) != len(references):
            raise ValueError(f"{self.name}: {len(predictions)} predictions for {len(references)} references")
        return float(self.fn(list(predictions), list(references))) if predictions else 0.0


class ExactMatchConfig(BaseModel):
    """Normalisation before comparing (lm-eval's exact_match options)."""

    model_config = ConfigDict(extra="forbid")

    regexes_to_ignore: list[str] = Field(default_factory=list,
                                         description="Regular expressions removed from both texts first.")
    ignore_case: bool = Field(False, description="Compare lower-cased.")
    ignore_punctuation: bool = Field(False, description="Remove ASCII punctuation.")
    ignore_numbers: bool = Field(False, description="Remove digits.")

    @field_validator("regexes_to_ignore")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regexes_to_ignore: {pattern!r} is not a regular expression ({exc})") from None
        return value


def normalise(text: str, cfg: ExactMatchConfig) -> str:
    for pattern in cfg.regexes_to_ignore:
        text = re.sub(pattern, "", text)
    if cfg.ignore_case:
        text = text.lower()
    if cfg.ignore_punctuation:
        text = text.translate(str.maketrans("", "", string.punctuation))
    if cfg.ignore_numbers:
        text = text.translate(str.maketrans("", "", string.digits))
    return text


def exact_match_metric(config: ExactMatchConfig | None = None) -> GenerationMetric:
    cfg = config if config is not None else ExactMatchConfig()

    def score(predictions: list[str], references: list[str]) -> float:
        hits = sum(normalise(p, cfg) == normalise(r, cfg) for p, r in zip(predictions, references, strict=True))
        return hits / len(predictions)

    return GenerationMetric("exact_match", score)


def bleu_metric(config: Any = None) -> GenerationMetric:
    def score(predictions: list[str], references: list[str]) -> float:
        import sacrebleu

        return sacrebleu.corpus_bleu(predictions, [references]).score

    return GenerationMetric("bleu", score)


def chrf_metric(config: Any = None) -> GenerationMetric:
    def score(predictions: list[str], references: list[str]) -> float:
        import sacrebleu

        return sacrebleu.corpus_chrf(predictions, [references]).score

    return GenerationMetric("chrf", score)
