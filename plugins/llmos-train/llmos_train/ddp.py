"""Distributed data-parallel training with ``torchrun`` (gloo on CPU, NCCL on GPUs: one GPU per process, the one of its ``LOCAL_RANK``).

The pipeline stays one process; only the training loop is distributed:

1. :func:`launch` (in the pipeline process) writes the model (config + safetensors),
   points at the memory-mapped data and writes ``job.json``;
2. it starts ``python -m torch.distributed.run --standalone --nproc-per-node N
   -m llmos_train.ddp job.json`` in its own session (so Ctrl-C reaches only the
   pipeline process, which then asks the workers to stop through a file);
3. every worker runs :func:`llmos_train.loop.train` with a ``DistributedDataParallel``
   wrapper and its slice of each global batch; rank 0 alone prints metrics (JSON
   lines that :func:`launch` forwards to the run), writes checkpoints and the result;
4. :func:`launch` loads the trained weights back into the pipeline's model.

Usable by hand too: ``torchrun --nproc-per-node 2 -m llmos_train.ddp job.json``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

MARK = "@@llmos "


# ---------------------------------------------------------------------------
# launcher (pipeline process)
# ---------------------------------------------------------------------------


def _data_ref(arr: Any, path: Path) -> dict[str, Any]:
    """Where a worker finds ``arr``: the memory-mapped file itself when it is one (no copy,
    whatever its size), else a ``.npy`` written to the job directory."""
    import numpy as np

    if isinstance(arr, np.memmap) and getattr(arr, "filename", None) and arr.flags.c_contiguous and arr.size:
        root = arr
        while isinstance(root.base, np.memmap):
            root = root.base
        # a slice of a memmap keeps its parent's .offset: compute the real one from the addresses
        delta = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        return {"path": str(arr.filename), "dtype": str(arr.dtype), "shape": list(arr.shape),
                "offset": int(root.offset) + int(delta)}
    np.save(path, np.ascontiguousarray(arr))
    return {"npy": str(path)}


def _load_data(ref: dict[str, Any]) -> Any:
    import numpy as np

    if "npy" in ref:
        return np.load(ref["npy"], mmap_mode="r")
    return np.memmap(ref["path"], dtype=ref["dtype"], mode="r", offset=ref["offset"], shape=tuple(ref["shape"]))


def _lora_spec(model: Any) -> dict[str, Any] | None:
    """For a peft (LoRA) model, what a worker needs besides the config to rebuild it: the
    frozen base's dtype (the adapter's settings are the stage's LoraConfig)."""
    if not hasattr(model, "peft_config"):
        return None
    frozen = next(p for p in model.parameters() if not p.requires_grad)
    return {"dtype": str(frozen.dtype).removeprefix("torch.")}


def launch(ctx: Any, io: Any, cfg: Any, model: Any, train_blocks: Any, val_blocks: Any, *, seed: int,
           nproc: int) -> Any:
    """Train ``model`` with ``nproc`` DDP processes; returns the loop's :class:`TrainResult`."""
    from safetensors.torch import load_model, save_model

    from llmos.sdk import LlmosError, ValidationError
    from llmos_train.loop import TrainResult

    if not hasattr(getattr(model, "config", None), "to_json_string"):
        raise ValidationError("DDP (nproc > 1) needs a transformers model (with .config): use a model.* stage")
    from llmos.sdk import resolve_device

    if resolve_device(cfg.device).startswith("cuda"):
        import torch

        if nproc > torch.cuda.device_count():
            raise ValidationError(f"nproc={nproc} processes need {nproc} GPUs (one each); {torch.cuda.device_count()} "
                                  f"are visible: lower nproc or set device = \"cpu\"")
    sid = ctx.stage.id if ctx.stage is not None else "train"
    job = Path(ctx.workdir) / "ddp" / sid
    job.mkdir(parents=True, exist_ok=True)
    (job / "model").mkdir(exist_ok=True)
    model.config.to_json_file(str(job / "model" / "config.json"))
    save_model(model, str(job / "model" / "model.safetensors"))  # a LoRA model: base + adapter tensors
    stop_file, result_file = job / "STOP", job / "result.json"
    stop_file.unlink(missing_ok=True)
    result_file.unlink(missing_ok=True)
    spec = {
        "config": cfg.model_dump(mode="json"),
        "seed": seed,
        "resume": bool(io.resume),
        "checkpoint_dir": str(io.checkpoint_dir),
        "model_dir": str(job / "model"),
        "train": _data_ref(train_blocks, job / "train.npy"),
        "validation": _data_ref(val_blocks, job / "validation.npy"),
        "stop_file": str(stop_file),
        "result_file": str(result_file),
        # optimizer.lora: the workers rebuild the same peft model (base dtype, adapter settings)
        "lora": _lora_spec(model),
    }
    (job / "job.json").write_text(json.dumps(spec, indent=1))
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "llmos_train.ddp", str(job / "job.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    tail: list[str] = []
    try:
        while True:
            if io.should_stop() and not stop_file.exists():
                stop_file.touch()
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            pos = line.find(MARK)
            if pos < 0:
                tail = (tail + [line.rstrip()])[-30:]
                continue
            msg = json.loads(line[pos + len(MARK):])
            if msg["t"] == "train":
                io.log_train(msg["step"], msg["metrics"])
            elif msg["t"] == "eval":
                io.log_eval(msg["step"], msg["metrics"])
            elif msg["t"] == "progress":
                io.progress(msg["advance"], **msg["fields"])
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # second Ctrl-C or an error here: stop the workers
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if rc != 0 or not result_file.exists():
        errors = [t for t in tail if "Error" in t or "error" in t] or tail or ["no output"]
        sys.stderr.write("\n".join(tail) + "\n")
        raise LlmosError(f"DDP training failed (torchrun exit {rc}): {errors[-1].strip()[:300]}")
    res = json.loads(result_file.read_text())
    if res.get("checkpoint"):
        load_model(model, str(Path(res["checkpoint"]) / "model.safetensors"))
    return TrainResult(step=res["step"], stopped=res["stopped"], metrics=res["metrics"], history=res["history"],
                       checkpoint=res["checkpoint"])


# ---------------------------------------------------------------------------
# worker (one per process, started by torchrun)
# ---------------------------------------------------------------------------


def _emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(msg) + "\n")
    sys.stdout.flush()


def worker(job_path: str) -> int:
    import torch
    import torch.distributed as dist
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from llmos_train.config import TrainConfig
    from llmos_train.loop import Dist, TrainIO, train

    job = json.loads(Path(job_path).read_text())
    lora = job.get("lora")
    # the optimizer and schedule are looked up by name in this process's own plugin manager
    # (entry points, as in the pipeline process): a plugin's optimizer reaches the workers
    if lora:
        from llmos_train.lora_model import LoraConfig

        cfg: TrainConfig = LoraConfig.model_validate(job["config"])
    else:
        cfg = TrainConfig.model_validate(job["config"])
    from llmos.sdk import resolve_device

    device = resolve_device(cfg.device)
    if device.startswith("cuda"):  # one GPU per process: the one of this process's LOCAL_RANK
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    gloo = not device.startswith("cuda") or os.environ.get("LLMOS_DDP_BACKEND") == "gloo"
    dist.init_process_group("gloo" if gloo else "nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    config = AutoConfig.from_pretrained(job["model_dir"])
    torch.manual_seed(job["seed"])
    if lora:  # the same peft model as the pipeline's: frozen base + adapter, only the adapter trains (and syncs)
        from llmos_train.lora_model import attach_lora

        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, lora["dtype"]))
        model = attach_lora(model, cfg, None)
    else:
        model = AutoModelForCausalLM.from_config(config)
    load_model(model, str(Path(job["model_dir"]) / "model.safetensors"))
    stop_file = Path(job["stop_file"])

    class WorkerIO(TrainIO):
        checkpoint_dir = Path(job["checkpoint_dir"])
        resume = job["resume"]

        def log_train(self, step: int, metrics: dict[str, float]) -> None:
            _emit({"t": "train", "step": step, "metrics": metrics})

        def log_eval(self, step: int, metrics: dict[str, float]) -> None:
            if rank == 0:
                _emit({"t": "eval", "step": step, "metrics": metrics})

        def progress(self, advance: int, **fields: Any) -> None:
            if rank == 0:
                _emit({"t": "progress", "advance": advance, "fields": fields})

        def should_stop(self) -> bool:
            return stop_file.exists()

    try:
        result = train(model, _load_data(job["train"]), _load_data(job["validation"]), cfg, WorkerIO(),
                       seed=job["seed"], dist=Dist(rank, world, device, cfg.parallel == "fsdp"))
        if rank == 0:
            out = {"step": result.step, "stopped": result.stopped, "metrics": result.metrics,
                   "history": result.history, "checkpoint": result.checkpoint}
            tmp = Path(job["result_file"] + ".tmp")
            tmp.write_text(json.dumps(out))
            os.replace(tmp, job["result_file"])
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1]))
