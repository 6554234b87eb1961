"""llmos-jsonl-sink: append every metric llmos reports to JSON Lines files.

Hook module: :mod:`llmos_jsonl_sink.plugin`; the writer: :mod:`llmos_jsonl_sink.sink`.
"""

__version__ = "0.1.0"
