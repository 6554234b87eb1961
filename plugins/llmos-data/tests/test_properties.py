"""Property-based checks of the cleaning, split and MinHash building blocks."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from llmos_data.clean import MinHasher, clean_text, doc_hash, is_validation, jaccard_estimate

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(texts, st.sampled_from(["NFC", "NFKC"]))
def test_clean_text_is_idempotent_and_normalised(text, form):
    once = clean_text(text, normalize=form)
    assert clean_text(once, normalize=form) == once
    assert unicodedata.is_normalized(form, once)
    assert "\r" not in once and "\n\n\n" not in once and once == once.strip()
    assert not any(line.endswith((" ", "\t")) for line in once.split("\n"))


@settings(max_examples=200, deadline=None)
@given(texts, st.floats(0, 1), st.floats(0, 1))
def test_split_is_monotone_in_the_fraction(text, a, b):
    lo, hi = sorted((a, b))
    d = doc_hash(text)
    assert is_validation(d, lo) <= is_validation(d, hi)  # raising the fraction only adds documents
    assert is_validation(d, hi) == is_validation(doc_hash(text), hi)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_minhash_of_identical_texts_is_identical(text):
    h = MinHasher(32, 4)
    assert jaccard_estimate(h.signature(text), h.signature(text)) == 1.0
