"""Resumable checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a directory ``step-0000050/`` holding

- ``model.safetensors``     the model's weights (shared/tied tensors stored once),
- ``optimizer.safetensors`` the optimizer state flattened to ``state.<param>.<key>`` tensors,
- ``rng.safetensors``       torch's CPU RNG state and, when CUDA is in use, every GPU's
                            (uint8 tensors),
- ``state.json``            loop counters, scheduler, optimizer scalars and param groups,
                            Python's and NumPy's RNG states.

Nothing is pickled. A checkpoint is written to ``.step-N.tmp`` and renamed into
place, so a crash never leaves a half-written one that looks complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from llmos.sdk import fsync_dir as _fsync_dir

PREFIX = "step-"


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():  # idx: a parameter's index, or its name (FSDP's full state)
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"scalars": scalars, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    def index(idx: str) -> Any:
        return int(idx) if idx.isdigit() else idx

    for name, value in tensors.items():
        idx, key = name[len("state."):].rsplit(".", 1)
        state.setdefault(index(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.rsplit(".", 1)
        state.setdefault(index(idx), {})[key] = value
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _py_rng_to_json(state: Any) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_rng_from_json(data: list[Any]) -> Any:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def _np_rng_to_json() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _np_rng_from_json(data: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = data
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))



def save_checkpoint(
    directory: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loop_state: dict[str, Any],
    keep: int = 2,
    *,
    states: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> Path:
    """Write checkpoint ``step`` under ``directory`` and keep only the ``keep`` newest.

    :param states: ``(model state, optimizer state)`` to write instead of the objects' own
        (FSDP: the full states gathered from the shards).
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:07d}"
    tmp = directory / f".{PREFIX}{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if states is None:
        save_model(model, str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    else:
        drop = _tied_aliases(model)
        save_file({k: v.detach().contiguous().cpu() for k, v in states[0].items() if k not in drop},
                  str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _flatten_optimizer(states[1])
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"torch_cuda_{i}"] = st
    save_file(rng, str(tmp / "rng.safetensors"))
    # plain numbers; schedule functions (and a plugin's callable objects) are rebuilt from the config
    sched = scheduler.state_dict()
    if "lr_lambdas" in sched:
        sched["lr_lambdas"] = [None] * len(sched["lr_lambdas"])
    state = {
        "step": step,
        "loop": loop_state,
        "scheduler": sched,
        "optimizer": opt_meta,
        "python_rng": _py_rng_to_json(random.getstate()),
        "numpy_rng": _np_rng_to_json(),
    }
    (tmp / "state.json").write_text(json.dumps(state))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _tied_aliases(model: torch.nn.Module) -> set[str]:
    """Names of tied (shared) parameters that ``save_model`` leaves out: of each group of
    names for one tensor, safetensors keeps the first in sorted order."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return {n for names in groups.values() if len(names) > 1 for n in sorted(names)[1:]}


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
    *, fsdp: bool = False,
) -> dict[str, Any]:
    """Restore a checkpoint into ``model`` (and optimizer, scheduler, RNGs); returns its loop state.

    :param fsdp: ``model`` is sharded (FSDP): every rank loads the full states and keeps its shard.
    """
    state = json.loads((path / "state.json").read_text())
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        opt_state = _unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), state["optimizer"])
        set_state_dict(model, optimizer, model_state_dict=load_file(str(path / "model.safetensors")),
                       optim_state_dict=opt_state, options=StateDictOptions(full_state_dict=True))
    else:
        load_model(model, str(path / "model.safetensors"), strict=True)
        if optimizer is not None:
            optimizer.load_state_dict(
                _unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), state["optimizer"]))
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    cuda = sorted((k for k in rng if k.startswith("torch_cuda_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if cuda and torch.cuda.is_available():
        states = [rng[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    random.setstate(_py_rng_from_json(state["python_rng"]))
    _np_rng_from_json(state["numpy_rng"])
    return {"step": state["step"], **state["loop"]}
