"""What one server process holds: its settings, model pool, metrics and notifier."""

from __future__ import annotations

import time

from llmos_serve.config import ServeConfig
from llmos_serve.metrics import ServeMetrics
from llmos_serve.notify import Notifier
from llmos_serve.pool import ModelPool


def build_pool(config: ServeConfig) -> ModelPool:
    """The model pool ``config`` describes (nothing loads until :meth:`ModelPool.start`)."""
    return ModelPool(
        config.model,
        config.canary,
        config.canary_percent,
        engine_options={"max_batch_size": config.max_batch_size, "max_queue": config.max_queue},
        routing_seed=config.routing_seed,
        poll_interval=config.poll_interval,
        engine=config.engine,
        device=config.device,
        precision=config.precision,
        also=config.also,
    )


class ServerState:
    """The parts of a server, wired so that the app and the pool's engines observe
    the same metrics (``app.state.llmos``)."""

    def __init__(self, config: ServeConfig, pool: ModelPool | None = None) -> None:
        self.config = config
        self.pool = pool if pool is not None else build_pool(config)
        self.metrics = ServeMetrics(self.pool)
        self.pool.observer_factory = self.metrics.observer  # one registry for app and engines
        self.notifier = Notifier(self.metrics, self.pool)
        self.created = int(time.time())
        self.known_paths: set[str] = set()
        #: set when the server was asked to stop (``/ready`` then answers 503)
        self.draining = False
