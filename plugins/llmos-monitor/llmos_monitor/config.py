"""Settings of the monitor's pipeline components (pydantic models)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PrometheusConfig(BaseModel):
    """``monitoring.prometheus``: serve ``/metrics`` for the rest of the process."""

    model_config = ConfigDict(extra="forbid")
    port: int = Field(9464, ge=0, le=65535, description="TCP port (0 = any free port)")
    host: str = Field("127.0.0.1", description="interface to bind")


class PlotConfig(BaseModel):
    """``monitoring.plot``: write the run's metric curves to a PNG in the run directory."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field("report/metrics.png", description="output file, relative to the run's workdir")
    title: str | None = Field(None, description="figure title (default: the run id)")
