"""`llmos run` and `llmos runs`: through click in-process, and as a real process for Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos.cli import main

HERE = Path(__file__).parent


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_prints_summary_and_runs_reads_it_back(toy_file, steps, registry) -> None:
    r = cli("run", str(toy_file), "--set", "stages.train.config.steps=12", "-q")
    assert r.exit_code == 0, r.output
    assert "versions registered: toy:1" in r.output
    for stage in ("numbers", "train", "save"):
        assert stage in r.output
    run_id = registry.list_runs()[0].id
    assert f"llmos runs show {run_id}" in r.output

    listed = json.loads(cli("runs", "list", "--json").output)
    assert [x["id"] for x in listed] == [run_id] and listed[0]["status"] == "completed"
    shown = json.loads(cli("runs", "show", run_id, "--json").output)
    assert shown["metrics"]["train/loss"]["count"] == 12
    assert [s["stage_id"] for s in shown["stages"]] == ["numbers", "train", "save"]
    text = cli("runs", "show", run_id[:10]).output
    assert "train/loss" in text and "optimizer.count" in text and "toy:1" in text
    assert run_id in cli("runs", "list").output


def test_run_json_and_compare(toy_file, steps, registry) -> None:
    a = json.loads(cli("run", str(toy_file), "--json").output)
    b = json.loads(cli("run", str(toy_file), "--json", "--set", "stages.train.config.lr=0.1").output)
    assert a["status"] == b["status"] == "completed" and a["versions"] == ["toy:1"]
    assert a["metrics"]["val_loss"] != b["metrics"]["val_loss"]
    cmp = json.loads(cli("runs", "compare", a["run_id"], b["run_id"], "--json").output)
    assert cmp["config_differences"] == {"stages.train.config.lr": [None, 0.1]}
    assert cmp["metrics"]["val_loss"] == [a["metrics"]["val_loss"], b["metrics"]["val_loss"]]
    out = cli("runs", "compare", a["run_id"], b["run_id"]).output
    assert "config stages.train.config.lr" in out
    r = CliRunner().invoke(main, ["runs", "compare", a["run_id"]])
    assert r.exit_code == 2 and "at least two runs" in r.output


def test_invalid_file_fails_before_anything_is_recorded(tmp_path, steps, registry) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipeline]\nname = "toy"\n[[stages]]\nuse = "optimizer.count"\n[stages.config]\nlr = "x"\n'
                   '[[stages]]\nuse = "model.nothing"\n')
    r = CliRunner().invoke(main, ["run", str(bad)])
    assert r.exit_code == 2
    assert "2 problems" in r.output and "stages[0].config.lr: Input should be a valid number" in r.output
    assert "stages[1].use: no component model.nothing" in r.output
    assert registry.list_runs() == []
    assert not (Path(os.environ["LLMOS_HOME"]) / "runs").exists()


def test_check_and_usage_errors(toy_file, steps) -> None:
    r = cli("run", str(toy_file), "--check")
    assert r.exit_code == 0 and "valid, 3 stages" in r.output and "optimizer.count" in r.output
    r = CliRunner().invoke(main, ["run"])
    assert r.exit_code == 2 and "give a pipeline FILE" in r.output
    r = CliRunner().invoke(main, ["runs", "show", "nope"])
    assert r.exit_code == 2 and "does not exist" in r.output
    assert "No runs yet" in cli("runs", "list").output


def test_failed_run_exit_code_and_resume_by_cli(toy_file, steps, registry) -> None:
    r = CliRunner().invoke(main, ["run", str(toy_file), "--set", "stages.train.config.fail_at=3", "-q"])
    assert r.exit_code == 1
    run_id = registry.list_runs()[0].id
    assert "stage 'train' (optimizer.count) failed: RuntimeError: boom at step 3" in r.output
    assert f"llmos run --resume {run_id}" in r.output
    r = cli("run", "--resume", run_id, "-q")
    assert r.exit_code == 0, r.output
    assert registry.get_run(run_id).status == "completed"


def _start(args: list[str], home: Path) -> subprocess.Popen:
    env = dict(os.environ, LLMOS_HOME=str(home), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(HERE / "run_cli.py"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(home: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(home.glob("runs/*/checkpoints/train/state.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_run(toy_file, steps, llmos_home, registry) -> None:
    args = ["run", str(toy_file), "--set", "stages.train.config.steps=400", "--set",
            "stages.train.config.sleep=0.01"]
    proc = _start(args, llmos_home)
    _wait_for_checkpoint(llmos_home, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Stopping: saving a checkpoint" in err
    run_id = registry.list_runs()[0].id
    assert f"Interrupted. Resume with: llmos run --resume {run_id}" in err
    info = registry.get_run(run_id)
    assert info.status == "interrupted"
    done = [p["step"] for p in registry.run_metrics(run_id, "loss")]
    assert 0 < len(done) < 400

    proc = _start(["run", "--resume", run_id, "-q"], llmos_home)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert registry.get_run(run_id).status == "completed"
    assert [p["step"] for p in registry.run_metrics(run_id, "loss")] == list(range(1, 401))


@pytest.mark.slow
def test_second_ctrl_c_aborts_at_once(toy_file, steps, llmos_home, registry) -> None:
    proc = _start(["run", str(toy_file), "--set", "stages.train.config.sleep=2"], llmos_home)
    _wait_for_checkpoint(llmos_home, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    info = registry.list_runs()[0]
    assert info.status == "interrupted"
    stages = registry.get_run(info.id).stages
    assert stages[-1]["status"] == "interrupted" and stages[-1]["result"]["error"] == "interrupted (Ctrl-C)"


def _checkpoint_step(home: Path, run_id: str) -> int:
    return json.loads((home / "runs" / run_id / "checkpoints" / "train" / "state.json").read_text())["step"]


@pytest.mark.slow
def test_sigterm_checkpoints_flushes_metrics_and_leaves_a_resumable_run(toy_file, steps, llmos_home,
                                                                        registry) -> None:
    """What systemd, Docker and Kubernetes send (issue 12.5): treated as Ctrl-C."""
    args = ["run", str(toy_file), "--set", "stages.train.config.steps=400", "--set",
            "stages.train.config.sleep=0.01"]
    proc = _start(args, llmos_home)
    _wait_for_checkpoint(llmos_home, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Stopping: saving a checkpoint" in err
    run_id = registry.list_runs()[0].id
    assert f"Interrupted. Resume with: llmos run --resume {run_id}" in err
    assert registry.get_run(run_id).status == "interrupted"
    # every step up to the checkpoint reached the database (the metric buffer was flushed)
    done = [p["step"] for p in registry.run_metrics(run_id, "loss")]
    assert done == list(range(1, _checkpoint_step(llmos_home, run_id) + 1)) and 0 < len(done) < 400

    proc = _start(["run", "--resume", run_id, "-q"], llmos_home)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert registry.get_run(run_id).status == "completed"
    assert [p["step"] for p in registry.run_metrics(run_id, "loss")] == list(range(1, 401))


def _runs_json(*args: str) -> list[dict]:
    r = cli("runs", "list", "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.slow
def test_a_killed_run_shows_as_dead_not_running_and_can_be_resumed(toy_file, steps, llmos_home, registry) -> None:
    proc = _start(["run", str(toy_file), "--set", "stages.train.config.sleep=0.2"], llmos_home)
    _wait_for_checkpoint(llmos_home, proc)
    run_id = registry.list_runs()[0].id
    assert _runs_json()[0]["status"] == "running"
    proc.kill()  # SIGKILL: no handler, no exit code, nothing flushed
    proc.wait(timeout=30)
    assert [(r["id"], r["status"]) for r in _runs_json()] == [(run_id, "dead")]
    assert [r["id"] for r in _runs_json("--status", "dead")] == [run_id]
    assert _runs_json("--status", "running") == []
    r = cli("runs", "show", run_id)
    assert "status:    dead" in r.output
    r = cli("run", "--resume", run_id, "-q")
    assert r.exit_code == 0, r.output
    assert registry.get_run(run_id).status == "completed"


@pytest.mark.slow
def test_a_run_is_run_by_one_process_at_a_time(toy_file, steps, llmos_home, registry) -> None:
    """Issue 12.6: `--resume ID` while ID is still running is refused, with a clear error."""
    first = _start(["run", str(toy_file), "--set", "stages.train.config.steps=400", "--set",
                    "stages.train.config.sleep=0.05"], llmos_home)
    _wait_for_checkpoint(llmos_home, first)
    run_id = registry.list_runs()[0].id
    second = _start(["run", "--resume", run_id, "-q"], llmos_home)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 3, err  # a conflict
    assert f"run {run_id} is still running in another process (pid {first.pid}@" in err
    assert f"kill -TERM {first.pid}" in err and len(err.strip().splitlines()) == 1
    assert first.poll() is None  # the first one goes on, untouched
    # and nothing of a second attempt was recorded
    assert json.loads((llmos_home / "runs" / run_id / "run.json").read_text())["attempts"] == 1
    assert registry.get_run(run_id).status == "running"
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert first.returncode == 130
    r = cli("run", "--resume", run_id, "-q")  # the lock went with the first process
    assert r.exit_code == 0, r.output


def test_a_run_on_another_host_is_lost_when_its_heartbeat_stops(toy_file, steps, llmos_home, registry,
                                                               monkeypatch) -> None:
    import datetime as dt

    from sqlalchemy import update

    from llmos_registry.models import Run

    assert cli("run", str(toy_file), "-q", "--set", "stages.train.config.fail_at=2").exit_code == 1
    run_id = registry.list_runs()[0].id
    with registry.session(write=True) as s:  # as a process on host gpu-7 records a run it is running
        s.execute(update(Run).where(Run.id == run_id).values(status="running", host="gpu-7", pid=4242,
                                                             heartbeat_at=dt.datetime.now(dt.timezone.utc)))
    assert _runs_json()[0]["status"] == "running"  # heartbeat fresh: still running there
    r = cli("run", "--resume", run_id, "-q")
    assert r.exit_code == 3 and f"run {run_id} is still running on host gpu-7 (pid 4242" in r.output
    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    with registry.session(write=True) as s:
        s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=stale))
    assert _runs_json()[0]["status"] == "lost"
    monkeypatch.setenv("LLMOS_RUN_LOST_AFTER_S", "3600")
    assert _runs_json()[0]["status"] == "running"
    monkeypatch.delenv("LLMOS_RUN_LOST_AFTER_S")
    r = cli("run", "--resume", run_id, "-q")  # a lost run can be taken over
    assert r.exit_code == 0, r.output
    assert registry.get_run(run_id).status == "completed" and registry.get_run(run_id).host != "gpu-7"
