"""A synthetic corpus generator for tests and benchmarks (deterministic, fast).

Documents are sentences of pseudo-words drawn from a Zipf-like distribution, so
the BPE tokenizer and the dedup see text with realistic statistics, of any size,
without downloading anything.
"""

from __future__ import annotations

from pathlib import Path


def _vocabulary(rng, n_words: int) -> list[str]:
    letters = list("etaoinshrdlcumwfgypbvkjxqz")
    weights = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5,
               1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
    total = sum(weights)
    p = [w / total for w in weights]
    words: set[str] = set()
    out: list[str] = []
    while len(out) < n_words:
        length = int(rng.integers(1, 10))
        word = "".join(rng.choice(letters, size=length, p=p))
        if word not in words:
            words.add(word)
            out.append(word)
    return out


def write_synthetic_corpus(path: Path | str, n_bytes: int, *, seed: int = 0, n_words: int = 5000,
                           doc_chars: tuple[int, int] = (500, 8000), file_bytes: int = 64 << 20) -> list[Path]:
    """Write about ``n_bytes`` of text as ``.txt`` files under directory ``path``;
    documents are separated by blank lines (read them with ``split_paragraphs = true``).

    :returns: the files written.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    words_list = _vocabulary(rng, n_words)
    vocab = np.array(words_list, dtype=object)
    capital = np.array([w.capitalize() for w in words_list], dtype=object)
    ranks = np.arange(1, n_words + 1, dtype=np.float64)
    probs = 1.0 / ranks**1.1
    probs /= probs.sum()
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    written = 0
    index = 0
    fh = None
    file_written = 0
    try:
        while written < n_bytes:
            if fh is None or file_written >= file_bytes:
                if fh is not None:
                    fh.close()
                f = root / f"part-{index:05d}.txt"
                index += 1
                files.append(f)
                fh = open(f, "w", encoding="utf-8")
                file_written = 0
            target = int(rng.integers(*doc_chars))
            n = max(4, target // 6)
            idx = rng.choice(n_words, size=n, p=probs)
            ends = rng.random(n) < 0.08
            starts = np.concatenate([[True], ends[:-1]])
            parts = np.empty(2 * n, dtype=object)
            parts[0::2] = np.where(starts, capital[idx], vocab[idx])
            parts[1::2] = np.where(ends, ". ", " ")
            doc = "".join(parts).strip() + ".\n\n"
            fh.write(doc)
            size = len(doc)
            written += size
            file_written += size
    finally:
        if fh is not None:
            fh.close()
    return files
