"""llmos-data: the standard data plugin (corpora, cleaning, BPE tokenizer, packing).

Importing this package is light; the work lives in :mod:`llmos_data.corpus`.
"""

__version__ = "0.1.0"
