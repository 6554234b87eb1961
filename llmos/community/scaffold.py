'''``llmos plugin new NAME --stage STAGE``: a plugin distribution whose tests pass as generated.

The generated project::

    <name>/pyproject.toml          entry point in the `llmos` group -> <pkg>.plugin
    <name>/src/<pkg>/plugin.py     the light hook module (LLMOS_API = 2, no heavy imports)
    <name>/src/<pkg>/components.py a real minimal component for the stage (+ its config)
    <name>/tests/test_plugin.py    contract check + the component run on a real RunContext
    <name>/README.md, LICENSE

Heavy libraries (torch, safetensors) are imported inside the component functions.
'''

from __future__ import annotations

import datetime as dt
from pathlib import Path

from llmos.community import names
from llmos.errors import ConflictError, ValidationError

STAGE_HOOK = {
    "data": "llmos_register_data_steps", "model": "llmos_register_model_steps", "optimizer": "llmos_register_optimizer_steps",
    "compression": "llmos_register_compression_steps", "deployment": "llmos_register_deployment_steps",
    "monitoring": "llmos_register_monitoring_steps",
}
TORCH_STAGES = ("model", "optimizer", "compression", "deployment")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "__NAME__"
version = "0.1.0"
description = "__SUMMARY__"
readme = "README.md"
requires-python = ">=3.11"
license = "__LICENSE__"
authors = [{ name = "__AUTHOR__"__EMAIL__ }]
keywords = ["llmos", "llmos-plugin", "__STAGE__"]
dependencies = [__DEPS__]

[project.optional-dependencies]
test = ["pytest>=8"]
__URLS__
[project.entry-points.llmos]
__NAME__ = "__PKG__.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
pythonpath = ["src"]
addopts = "-p no:cacheprovider"
"""

PLUGIN = '''\
"""llmos plugin __NAME__: hook implementations (kept light: no torch at import time)."""

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def __HOOK__(register):
    from __PKG__.components import __CONFIG__

    register(
        "__COMP__",
        "__PKG__.components:__FACTORY__",
        config=__CONFIG__,
        description="__DESCRIPTION__",
    )
'''

TINY_LM = '''

class _Output:
    def __init__(self, logits):
        self.logits = logits


def tiny_lm(vocab_size: int = 256, dim: int = 16, seed: int = 0):
    """A tiny causal LM (embedding -> linear over the vocabulary) called as
    ``model(input_ids=...)`` and returning ``.logits``, like a transformers model."""
    import torch

    class TinyLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab_size, dim)
            self.head = torch.nn.Linear(dim, vocab_size)

        def forward(self, input_ids):
            return _Output(self.head(self.embed(input_ids)))

    torch.manual_seed(seed)
    return TinyLM()
'''

COMPONENTS = {
    "data": ('Lines', '''\
"""A corpus read from a local text file, one example per non-empty line."""

from pathlib import Path

from pydantic import BaseModel, Field

from llmos.errors import NotFoundError


class LinesConfig(BaseModel):
    path: str = Field("corpus.txt", description="text file, one example per line (relative to the run directory)")
    min_chars: int = Field(1, ge=1, description="drop lines shorter than this")


class LinesStep:
    def __init__(self, config: LinesConfig) -> None:
        self.config = config

    def run(self, ctx):
        path = Path(self.config.path)
        if not path.is_absolute():
            path = ctx.workdir / path
        if not path.is_file():
            raise NotFoundError(f"corpus file {path} does not exist: set path = \\"...\\" in the stage settings")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if len(ln) >= self.config.min_chars]
        ctx.artifacts["text_lines"] = lines
        return {"lines": len(lines), "chars": sum(map(len, lines))}


def make_lines(config: LinesConfig) -> LinesStep:
    return LinesStep(config)
''', "make_lines", "A corpus read from a local text file, one example per line"),
    "model": ('Tiny', '''\
"""A tiny byte-level language model built from config (no weights are downloaded)."""

from pydantic import BaseModel, Field


class TinyConfig(BaseModel):
    vocab_size: int = Field(256, ge=2, description="vocabulary size (256: raw bytes)")
    dim: int = Field(16, ge=1, description="embedding width")
    seed: int = Field(0, description="initialisation seed")


class TinyStep:
    def __init__(self, config: TinyConfig) -> None:
        self.config = config

    def run(self, ctx):
        model = tiny_lm(self.config.vocab_size, self.config.dim, self.config.seed)
        ctx.artifacts["model"] = model
        return {"params": sum(p.numel() for p in model.parameters())}


def make_tiny(config: TinyConfig) -> TinyStep:
    return TinyStep(config)
''' + TINY_LM, "make_tiny", "A tiny byte-level language model built from config"),
    "optimizer": ('Sgd', '''\
"""Train the run's model with plain SGD on byte-level next-token prediction."""

from pydantic import BaseModel, Field

from llmos.errors import ValidationError


class SgdConfig(BaseModel):
    lr: float = Field(0.5, gt=0, description="learning rate")
    steps: int = Field(20, ge=1, description="optimizer steps")
    text: str = Field("hello llmos " * 8, description="training text (used when no text_lines artifact)")


class SgdStep:
    def __init__(self, config: SgdConfig) -> None:
        self.config = config

    def run(self, ctx):
        import torch

        model = ctx.artifacts.get("model")
        if model is None:
            raise ValidationError("no model to train: put a model stage before this one")
        text = "\\n".join(ctx.artifacts.get("text_lines") or [self.config.text])
        ids = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)[None, :]
        opt = torch.optim.SGD(model.parameters(), lr=self.config.lr)
        losses = []
        for step in range(self.config.steps):
            logits = model(input_ids=ids[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            ctx.log_metrics(step, {"loss": losses[-1]})
        return {"first_loss": losses[0], "last_loss": losses[-1]}


def make_sgd(config: SgdConfig) -> SgdStep:
    return SgdStep(config)
''' + TINY_LM, "make_sgd", "Train the model with plain SGD on next-byte prediction"),
    "compression": ('Prune', '''\
"""Magnitude pruning: zero the smallest weights of every linear and embedding layer."""

from pydantic import BaseModel, Field

from llmos.errors import ValidationError


class PruneConfig(BaseModel):
    amount: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of each weight matrix set to zero")


class PruneStep:
    def __init__(self, config: PruneConfig) -> None:
        self.config = config

    def run(self, ctx):
        import torch

        model = ctx.artifacts.get("model")
        if model is None:
            raise ValidationError("no model to prune: put a model stage before this one")
        zeros = total = 0
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                    w = module.weight
                    k = int(w.numel() * self.config.amount)
                    if k:
                        cut = w.abs().flatten().kthvalue(k).values
                        w.masked_fill_(w.abs() <= cut, 0.0)
                    zeros += int((w == 0).sum())
                    total += w.numel()
        ctx.artifacts["lineage"] = {"method": "magnitude_prune", "settings": {"amount": self.config.amount}}
        return {"sparsity": zeros / max(total, 1)}


def make_prune(config: PruneConfig) -> PruneStep:
    return PruneStep(config)
''' + TINY_LM, "make_prune", "Magnitude pruning of linear and embedding weights"),
    "deployment": ('Export', '''\
"""Export the run's model weights to a safetensors file (never pickle)."""

from pathlib import Path

from pydantic import BaseModel, Field

from llmos.errors import ValidationError


class ExportConfig(BaseModel):
    out: str = Field("export/model.safetensors", description="output file (relative to the run directory)")


class ExportStep:
    def __init__(self, config: ExportConfig) -> None:
        self.config = config

    def run(self, ctx):
        from safetensors.torch import save_file

        model = ctx.artifacts.get("model")
        if model is None:
            raise ValidationError("no model to export: put a model stage before this one")
        out = Path(self.config.out)
        out = out if out.is_absolute() else ctx.workdir / out
        out.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(out))
        ctx.artifacts["export_path"] = str(out)
        return {"path": str(out), "tensors": len(tensors), "bytes": out.stat().st_size}


def make_export(config: ExportConfig) -> ExportStep:
    return ExportStep(config)
''' + TINY_LM, "make_export", "Export the model weights to a safetensors file"),
    "monitoring": ('Jsonl', '''\
"""Append the run's latest metrics to a JSON Lines file."""

import json
import time
from pathlib import Path

from pydantic import BaseModel, Field


class JsonlConfig(BaseModel):
    path: str = Field("metrics.jsonl", description="output file (relative to the run directory)")


class JsonlStep:
    def __init__(self, config: JsonlConfig) -> None:
        self.config = config

    def run(self, ctx):
        path = Path(self.config.path)
        path = path if path.is_absolute() else ctx.workdir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        metrics = {k: float(v) for k, v in dict(ctx.artifacts.get("metrics") or {}).items()}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"ts": time.time(), "run_id": ctx.run_id, "metrics": metrics}) + "\\n")
        return {"path": str(path), "metrics": len(metrics)}


def make_jsonl(config: JsonlConfig) -> JsonlStep:
    return JsonlStep(config)
''', "make_jsonl", "Append the run's latest metrics to a JSON Lines file"),
}

TEST_HEAD = '''\
"""Tests generated by `llmos plugin new`; they pass as generated. Keep them passing."""

import importlib

from llmos.context import RunContext
from llmos.testing import check_plugin_contract

plugin = importlib.import_module("__PKG__.plugin")


def test_contract():
    check_plugin_contract(plugin, "__NAME__")


def test_registers_component(plugin_manager):
    plugin_manager.register(plugin, name="__NAME__")
    comp = plugin_manager.get_component("__STAGE__.__COMP__")
    assert comp.plugin == "__NAME__"


def _ctx(tmp_path, **artifacts):
    return RunContext(run_id=None, spec=None, workdir=tmp_path, artifacts=dict(artifacts))

'''

TESTS = {
    "data": '''
def test_reads_lines(plugin_manager, tmp_path):
    plugin_manager.register(plugin, name="__NAME__")
    (tmp_path / "corpus.txt").write_text("first line\\n\\nsecond line\\nx\\n")
    step = plugin_manager.get_component("data.__COMP__").create({"min_chars": 2})
    ctx = _ctx(tmp_path)
    result = step.run(ctx)
    assert ctx.artifacts["text_lines"] == ["first line", "second line"]
    assert result["lines"] == 2
''',
    "model": '''
def test_builds_model(plugin_manager, tmp_path):
    import torch

    plugin_manager.register(plugin, name="__NAME__")
    ctx = _ctx(tmp_path)
    plugin_manager.get_component("model.__COMP__").create({"dim": 8}).run(ctx)
    logits = ctx.artifacts["model"](input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 256)
''',
    "optimizer": '''
def test_loss_goes_down(plugin_manager, tmp_path):
    from __PKG__.components import tiny_lm

    plugin_manager.register(plugin, name="__NAME__")
    ctx = _ctx(tmp_path, model=tiny_lm(dim=8))
    result = plugin_manager.get_component("optimizer.__COMP__").create({"steps": 15}).run(ctx)
    assert result["last_loss"] < result["first_loss"]
''',
    "compression": '''
def test_prunes_half(plugin_manager, tmp_path):
    from __PKG__.components import tiny_lm

    plugin_manager.register(plugin, name="__NAME__")
    ctx = _ctx(tmp_path, model=tiny_lm(dim=8))
    result = plugin_manager.get_component("compression.__COMP__").create({"amount": 0.5}).run(ctx)
    assert 0.5 <= result["sparsity"] < 0.6
    assert ctx.artifacts["lineage"]["method"] == "magnitude_prune"
''',
    "deployment": '''
def test_exports_safetensors(plugin_manager, tmp_path):
    from safetensors.torch import load_file

    from __PKG__.components import tiny_lm

    plugin_manager.register(plugin, name="__NAME__")
    model = tiny_lm(dim=8)
    ctx = _ctx(tmp_path, model=model)
    result = plugin_manager.get_component("deployment.__COMP__").create({}).run(ctx)
    loaded = load_file(result["path"])
    assert set(loaded) == set(model.state_dict())
''',
    "monitoring": '''
def test_appends_metrics(plugin_manager, tmp_path):
    import json

    plugin_manager.register(plugin, name="__NAME__")
    step = plugin_manager.get_component("monitoring.__COMP__").create({})
    step.run(_ctx(tmp_path, metrics={"val_loss": 1.5}))
    step.run(_ctx(tmp_path, metrics={"val_loss": 1.25}))
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["metrics"]["val_loss"] for r in rows] == [1.5, 1.25]
''',
}

README = """\
# __NAME__

__SUMMARY__

An [llmos](https://github.com/llmos/llmos) plugin for the **__STAGE__** stage. It provides
the component `__STAGE__.__COMP__`.

## Install

```bash
llmos plugin install __NAME__        # once it is in the index (hash-verified wheel)
pip install -e .                      # from this directory, while developing
```

## Use in a pipeline

```toml
[[stages]]
id = "__COMP__"
use = "__STAGE__.__COMP__"
```

See `llmos components --json` for its settings.

## Develop

```bash
pip install -e '.[test]'
pytest                     # the tests generated with the plugin
llmos plugin test .        # the llmos plugin contract checks
```

## Publish to the llmos index

```bash
llmos contrib keygen --handle YOUR-HANDLE
llmos contrib submit . --handle YOUR-HANDLE --index path/to/llmos/registry
```

then open a pull request; see the project's CONTRIBUTING.md.
"""


def package_name(name: str) -> str:
    return names.normalize(name).replace("-", "_")


def component_name(name: str) -> str:
    return names.core(name).replace(".", "-")


def scaffold(name: str, stage: str, directory: Path, *, author: str = "Your Name", email: str | None = None,
             license: str = "Apache-2.0", summary: str | None = None, source_url: str | None = None) -> Path:
    """Write the project into ``directory/<name>``; return its path."""
    from llmos.community.licenses import TEXTS

    if not names.is_valid(name):
        raise ValidationError(f"{name!r} is not a valid distribution name: letters, digits and - only "
                              "(e.g. llmos-my-corpus)")
    if names.is_stdlib(name):
        raise ValidationError(f"{name!r} is a standard-library module name; choose another")
    if stage not in COMPONENTS:
        raise ValidationError(f"unknown stage {stage!r}: use one of {', '.join(COMPONENTS)}")
    if license not in TEXTS:
        raise ValidationError(f"license {license!r}: the scaffold writes {', '.join(TEXTS)}; "
                              "pick one and change it afterwards if needed")
    target = Path(directory) / names.normalize(name)
    if target.exists() and any(target.iterdir()):
        raise ConflictError(f"{target} already exists and is not empty: choose another --dir or name")
    pkg = package_name(name)
    comp = component_name(name)
    prefix, body, factory, desc = COMPONENTS[stage]
    deps = ['"llmos>=0.1"', '"pydantic>=2"']
    if stage in TORCH_STAGES:
        deps.append('"torch>=2.1"')
    if stage == "deployment":
        deps.append('"safetensors>=0.4"')
    summary = summary or f"{desc} (an llmos {stage} plugin)"
    urls = f'\n[project.urls]\nSource = "{source_url}"\n' if source_url else ""
    subs = {
        "__NAME__": name, "__PKG__": pkg, "__COMP__": comp, "__STAGE__": stage, "__HOOK__": STAGE_HOOK[stage],
        "__CONFIG__": f"{prefix}Config", "__FACTORY__": factory, "__DESCRIPTION__": desc,
        "__SUMMARY__": summary.replace('"', "'"), "__LICENSE__": license, "__AUTHOR__": author,
        "__EMAIL__": f', email = "{email}"' if email else "", "__DEPS__": ", ".join(deps), "__URLS__": urls,
    }

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    files = {
        "pyproject.toml": fill(PYPROJECT),
        f"src/{pkg}/__init__.py": f'"""{name}: an llmos {stage} plugin."""\n',
        f"src/{pkg}/plugin.py": fill(PLUGIN),
        f"src/{pkg}/components.py": body,
        "tests/test_plugin.py": fill(TEST_HEAD + TESTS[stage]),
        "README.md": fill(README),
        "LICENSE": TEXTS[license].replace("{year}", str(dt.date.today().year)).replace("{holder}", author),
        ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n",
    }
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target
