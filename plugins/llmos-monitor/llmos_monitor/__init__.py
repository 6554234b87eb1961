"""llmos-monitor: system sampling, serving time series, Prometheus, plots, `llmos monitor` and `llmos ui`.

The hook module is :mod:`llmos_monitor.plugin` (light: imports llmos only);
everything else is imported when used.
"""

__version__ = "0.1.0"
