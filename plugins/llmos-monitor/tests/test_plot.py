"""`llmos monitor plot`: valid PNG files with exactly the series the run has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _labels(fig: Any) -> dict[str, list[str]]:
    return {ax.get_title(): sorted(line.get_label() for line in ax.get_lines()) for ax in fig.axes}


def test_plot_cli_writes_a_png_with_the_expected_series(run_pipeline: Any, tmp_path: Path, h: Any) -> None:
    import matplotlib.image

    result = run_pipeline(steps=12)
    out = tmp_path / "curves.png"
    r = h.invoke("monitor", "plot", result.run_id, "-o", str(out))
    assert f"Wrote {out}" in r.output
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = matplotlib.image.imread(str(out))
    assert img.shape[0] > 400 and img.shape[1] > 400 and img.shape[2] in (3, 4)
    assert img.std() > 0.01  # something is drawn

    from llmos.registry import open_registry
    from llmos_monitor.plot import plot_points
    from llmos_monitor.store import run_metrics

    fig = plot_points(run_metrics(open_registry(), result.run_id), tmp_path / "again.png")
    assert _labels(fig) == {
        "loss": ["eval/val_loss", "train/loss"],
        "perplexity": ["eval/val_ppl"],
        "learning rate": ["train/lr"],
        "throughput": ["train/tokens_per_s"],
    }
    loss_line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "train/loss")
    assert list(loss_line.get_xdata()) == list(range(1, 13))
    assert list(loss_line.get_ydata()) == [h.train_loss(s) for s in range(1, 13)]


def test_only_existing_series_are_drawn(tmp_path: Path) -> None:
    from llmos_monitor.plot import plot_points

    points = [{"kind": "train", "step": s, "name": "loss", "value": 1.0 / s, "timestamp": 0.0} for s in (1, 2, 3)]
    points += [{"kind": "system", "step": 0, "name": "cpu_percent", "value": 5.0, "timestamp": 0.0}]
    fig = plot_points(points, tmp_path / "loss.png")
    assert _labels(fig) == {"loss": ["train/loss"]}
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC


def test_nothing_to_plot_and_bad_suffix_are_clear_errors(tmp_path: Path) -> None:
    from llmos.errors import ValidationError
    from llmos_monitor.plot import plot_points

    cpu = [{"kind": "system", "step": 0, "name": "cpu_percent", "value": 5.0, "timestamp": 0.0}]
    with pytest.raises(ValidationError, match="nothing to plot.*cpu_percent"):
        plot_points(cpu, tmp_path / "x.png")
    loss = [{"kind": "train", "step": 1, "name": "loss", "value": 1.0, "timestamp": 0.0}]
    with pytest.raises(ValidationError, match=r"must end in \.png"):
        plot_points(loss, tmp_path / "x.jpg")
    assert not list(tmp_path.iterdir())  # no partial files


def test_plot_step_in_a_pipeline(run_pipeline: Any) -> None:
    extra = '''
[[stages]]
id = "plot"
use = "monitoring.plot"
config = { path = "report/curves.png" }
'''
    result = run_pipeline(steps=6, extra=extra)
    png = Path(result.workdir) / "report" / "curves.png"
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_one_off_values_are_drawn_at_the_last_training_step(tmp_path: Path) -> None:
    from llmos_monitor.plot import plot_points

    points = [{"kind": "train", "step": s, "name": "loss", "value": 1.0 / s, "timestamp": float(s)} for s in (1, 2, 3)]
    points.append({"kind": "eval", "step": None, "name": "val_loss", "value": 0.5, "timestamp": 9.0})
    points += [{"kind": "system", "step": i, "name": "cpu_percent", "value": 1.0, "timestamp": 0.0} for i in range(50)]
    fig = plot_points(points, tmp_path / "p.png")
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "eval/val_loss")
    assert list(line.get_xdata()) == [3] and list(line.get_ydata()) == [0.5]
