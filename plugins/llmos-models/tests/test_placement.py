"""Where a loaded model runs (``llmos_models.placement.place``, used by ``llmos generate``
and the server's loader): moved and cast as asked, CPU-only models (int8, ONNX) kept on the
CPU, and a device or precision that cannot work is a one-line error before any generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from llmos.sdk import ValidationError
from llmos_models.placement import cpu_only, place


def test_pytorch_models_move_and_cast(make_model):
    model = make_model("llama", 64)
    assert place(model, "auto", "auto") == ("cpu", "fp32") and place(model, "cpu", "fp32") == ("cpu", "fp32")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert place(model, "cpu", "bf16") == ("cpu", "bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with pytest.raises(ValidationError, match="precision 'fp16' needs a GPU"):
        place(make_model("llama", 64), "cpu", "fp16")
    with pytest.raises(ValidationError, match="unknown device 'gpu'"):
        place(model, "gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="no CUDA GPU is visible"):
            place(model, "cuda:1")


def test_int8_models_stay_on_the_cpu_in_fp32(make_model):
    model = torch.ao.quantization.quantize_dynamic(make_model("llama", 64), {torch.nn.Linear}, dtype=torch.qint8)
    assert "int8-quantized" in cpu_only(model) and cpu_only(make_model("llama", 64)) is None
    assert place(model, "auto", "auto") == ("cpu", "fp32")
    with pytest.raises(ValidationError, match=r"device 'cuda': tiny:3 is int8-quantized .* runs on the CPU only"):
        place(model, "cuda", what="tiny:3")
    with pytest.raises(ValidationError, match="precision 'bf16': this model is int8-quantized"):
        place(model, "auto", "bf16")


def test_generate_takes_device_and_precision(model_dir, tmp_path):
    from click.testing import CliRunner

    from llmos_models.cli import generate as command

    def run(*flags: str) -> dict:
        r = CliRunner().invoke(command, [str(model_dir), "Return the", "-n", "10", "--json", *flags])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    assert run() == run("--device", "cpu", "--precision", "fp32")  # what auto is on this machine
    assert run("--precision", "bf16")["completion_tokens"] > 0
    env = dict(os.environ, LLMOS_HOME=str(tmp_path), LLMOS_PLUGINS="llmos-models,llmos-registry", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "llmos", "generate", str(model_dir), "hi", "--precision", "fp16"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "precision 'fp16' needs a GPU" in r.stderr
