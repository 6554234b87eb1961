"""Process set-up shared by every way of running the server: logging and torch threads."""

from __future__ import annotations

import logging
import os
import sys

from llmos_serve.config import ServeConfig

_configured = False


def configure_logging(level: int = logging.INFO) -> None:
    """Send ``llmos.serve`` logs (including the access log) to stderr, once."""
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("llmos.serve")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def set_threads(config: ServeConfig) -> None:
    """torch intra-op threads for this server process: ``config.threads``, or the
    cores divided between workers. Oversubscribed threads spin and slow every step."""
    if config.threads is None and config.workers == 1:
        return
    import torch

    torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // config.workers))
