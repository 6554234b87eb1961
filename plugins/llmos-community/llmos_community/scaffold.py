'''``llmos plugin new NAME --stage STAGE`` / ``--kind KIND``: a plugin distribution whose tests pass as generated.

``--kind stage`` (the default) writes a step of one stage::

    <name>/pyproject.toml          entry point in the `llmos` group -> <pkg>.plugin
    <name>/src/<pkg>/plugin.py     the light hook module (LLMOS_API = 2, no heavy imports)
    <name>/src/<pkg>/components.py a real minimal component for the stage (+ its config)
    <name>/tests/test_plugin.py    contract check + the component run on a real RunContext
    <name>/README.md, LICENSE

``--kind sink`` and the extension kinds (:data:`EXTENSION_KINDS`: optimizer, schedule,
reader, tokenizer-trainer, architecture, eval-task, eval-metric, quantizer,
export-format, engine) write ``plugin.py`` (the provider hook), the modules its factory
strings name, and a test that runs the standard tiny pipeline (``tests/tiny.toml``, a
copy of ``pipelines/tiny.toml``) with the plugin selected.

Heavy libraries (torch, numpy, transformers) are imported inside the factories only.

The files come from package data: ``templates/`` (``*.tmpl``, with ``__NAME__``-style
placeholders; ``templates/stages/<stage>/`` per stage, ``templates/kinds/<kind>/`` per
kind) and ``licenses/<SPDX id>.txt``.
'''

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

from llmos.sdk import STAGE_HOOKS, ConflictError, ValidationError
from llmos_community import names

TORCH_STAGES = ("model", "optimizer", "compression", "deployment")

#: per stage: (config class prefix, factory function, one-line description)
STAGE_COMPONENTS = {
    "data": ("Lines", "make_lines", "A corpus from a local text file, one document per line, BPE-tokenized and packed"),
    "model": ("Tiny", "make_tiny", "A tiny GPT-2-style language model sized to the run's dataset"),
    "optimizer": ("Sgd", "make_sgd", "Train the model with SGD and momentum on the dataset's blocks"),
    "compression": ("Prune", "make_prune", "Magnitude pruning of linear and embedding weights"),
    "deployment": ("Export", "make_export", "Export the model weights to a safetensors file"),
    "monitoring": ("Jsonl", "make_jsonl", "Append the run's latest metrics to a JSON Lines file"),
}
LICENSES = ("Apache-2.0", "MIT")
#: per stage: where the generated pipeline test puts the step in the standard tiny pipeline
#: (``stages`` / ``ids``: its stages and their ids), its settings there, and any set-up line
PIPELINE_PLACES = {
    "data": ("in place of data.corpus", '    stages[ids.index("data")] = step',
             '{"path": str(corpus), "vocab_size": 512, "block_size": 64}',
             '    corpus = tmp_path / "corpus.txt"\n    write_corpus(corpus)\n'),
    "model": ("in place of model.llama", '    stages[ids.index("model")] = step', '{"dim": 64, "layers": 2, "heads": 4}', ""),
    "optimizer": ("in place of optimizer.train", '    stages[ids.index("train")] = step', '{"steps": 4}', ""),
    "compression": ("before model.evaluate", '    stages.insert(ids.index("evaluate"), step)', '{"amount": 0.3}', ""),
    "deployment": ("at the end", "    stages.append(step)", "{}", ""),
    "monitoring": ("at the end", "    stages.append(step)", "{}", ""),
}


def template(rel: str) -> str:
    """The text of package data file ``rel`` (``templates/...`` or ``licenses/...``)."""
    from importlib.resources import files

    return files("llmos_community").joinpath(rel).read_text(encoding="utf-8")


def package_name(name: str) -> str:
    return names.normalize(name).replace("-", "_")


def component_name(name: str) -> str:
    return names.core(name).replace(".", "-")


#: ``llmos plugin new --kind``: what kinds of plugin the scaffold writes. ``stage``: a
#: step of one of the six stages (``--stage``); ``sink``: lifecycle hooks that see every
#: metric; the others: an extension a standard stage looks up by name
#: (:data:`EXTENSION_KINDS`), whose generated test runs the standard tiny pipeline with it.
KINDS = ("stage", "sink", "optimizer", "schedule", "reader", "tokenizer-trainer", "architecture", "eval-task",
         "eval-metric", "quantizer", "export-format", "engine")


class ExtensionKind(NamedTuple):
    hook: str  #: the provider hook
    kind: str  #: the kind ``llmos components --kind`` and ``manager.extensions()`` take
    what: str  #: "an optimizer", for the README
    select: str  #: how a pipeline selects it (``__COMP__`` = its name)
    consumer: str  #: the standard stage that consumes it
    deps: tuple[str, ...]  #: runtime dependencies beside llmos and pydantic
    test_plugins: tuple[str, ...]  #: standard plugins its generated test loads
    summary: str


_TINY = ("llmos-data", "llmos-models", "llmos-train")
EXTENSION_KINDS: dict[str, ExtensionKind] = {
    "optimizer": ExtensionKind(
        "llmos_register_optimizers", "optimizers", "an optimizer", "--set stages.train.config.optimizer=__COMP__",
        "optimizer.train", ("torch>=2.1",), _TINY, "Lion (sign momentum, Chen et al. 2023) for llmos's training stage"),
    "schedule": ExtensionKind(
        "llmos_register_lr_schedules", "lr_schedules", "a learning-rate schedule",
        "--set stages.train.config.schedule=__COMP__", "optimizer.train", (), _TINY,
        "Inverse square-root LR schedule (warmup, then lr * sqrt(warmup / step)) for llmos's training stage"),
    "reader": ExtensionKind(
        "llmos_register_data_readers", "data_readers", "a data reader",
        "--set stages.data.config.format=__COMP__ (or files ending in .__COMP__ with format = \"auto\")",
        "data.corpus", (), _TINY, "A CSV data reader for llmos's data.corpus stage: one document per row"),
    "tokenizer-trainer": ExtensionKind(
        "llmos_register_tokenizer_trainers", "tokenizer_trainers", "a tokenizer trainer",
        "--set stages.data.config.tokenizer_trainer=__COMP__", "data.corpus", ("tokenizers>=0.15", "transformers>=4.40"),
        _TINY, "A unigram (SentencePiece-style) tokenizer trainer for llmos's data.corpus stage"),
    "architecture": ExtensionKind(
        "llmos_register_architectures", "architectures", "a model architecture with size presets",
        "use = \"model.build\" with architecture = \"__COMP__\", preset = \"tiny\"", "model.build",
        ("transformers>=4.40",), _TINY, "A GPT-NeoX-style decoder (parallel attention, partial rotary) for llmos"),
    "eval-task": ExtensionKind(
        "llmos_register_eval_tasks", "eval_tasks", "an evaluation task",
        "--set 'stages.evaluate.config.tasks=[\"__COMP__\"]'", "model.evaluate", ("torch>=2.1",), _TINY,
        "An evaluation task for llmos: bits per byte of the model on a local text file"),
    "eval-metric": ExtensionKind(
        "llmos_register_eval_metrics", "eval_metrics", "an evaluation metric",
        "--set 'stages.evaluate.config.tasks=[{name = \"stdlib-docstrings\", metrics = [\"acc\", \"__COMP__\"]}]'",
        "model.evaluate", (), _TINY, "A multiple-choice metric for llmos: the probability given to the gold choice"),
    "quantizer": ExtensionKind(
        "llmos_register_quantizers", "quantizers", "a quantization method",
        "use = \"compression.quantize\" with method = \"__COMP__\"", "compression.quantize", ("torch>=2.1",),
        _TINY + ("llmos-compress",), "Round-to-nearest weight quantization (per-row, N bits) for llmos"),
    "export-format": ExtensionKind(
        "llmos_register_export_formats", "export_formats", "an export format",
        "use = \"deployment.export\" with format = \"__COMP__\" (or llmos model export --format __COMP__)",
        "deployment.export", ("torch>=2.1", "numpy>=1.24"), _TINY + ("llmos-export",),
        "Export a model as a NumPy .npz archive of its weights plus its tokenizer"),
    "engine": ExtensionKind(
        "llmos_register_serving_engines", "serving_engines", "a serving engine",
        "llmos serve NAME:N --engine __COMP__ (or engine = \"__COMP__\" in deployment.openai-server)",
        "llmos-serve", (), _TINY + ("llmos-serve",),
        "A serving engine for llmos: the PyTorch engine with its own cap on the batch size"),
}
#: kinds the scaffold once refused (every kind is written now)
PLANNED_KINDS: tuple[str, ...] = ()


def scaffold(name: str, stage: str | None, directory: Path, *, author: str = "Your Name", email: str | None = None,
             license: str = "Apache-2.0", summary: str | None = None, source_url: str | None = None,
             kind: str = "stage") -> Path:
    """Write the project into ``directory/<name>``; return its path."""
    if kind not in KINDS:
        raise ValidationError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "stage" and stage is None:
        raise ValidationError("--kind stage needs --stage data|model|optimizer|compression|deployment|monitoring")
    if not names.is_valid(name):
        raise ValidationError(f"{name!r} is not a valid distribution name: letters, digits and - only "
                              "(e.g. llmos-my-corpus)")
    if names.is_stdlib(name):
        raise ValidationError(f"{name!r} is a standard-library module name; choose another")
    if kind == "stage" and stage not in STAGE_COMPONENTS:
        raise ValidationError(f"unknown stage {stage!r}: use one of {', '.join(STAGE_COMPONENTS)}")
    if license not in LICENSES:
        raise ValidationError(f"license {license!r}: the scaffold writes {', '.join(LICENSES)}; "
                              "pick one and change it afterwards if needed")
    target = Path(directory) / names.normalize(name)
    if target.exists() and any(target.iterdir()):
        raise ConflictError(f"{target} already exists and is not empty: choose another --dir or name")
    pkg = package_name(name)
    comp = component_name(name)
    if kind != "stage":
        return _write_kind(kind, name, pkg, comp, target, author=author, email=email, license=license,
                           summary=summary, source_url=source_url)
    prefix, factory, desc = STAGE_COMPONENTS[stage]
    body = template(f"templates/stages/{stage}/components.py.tmpl")
    if stage in TORCH_STAGES and stage != "model":  # their unit tests train/prune/export tiny_lm()
        body += template("templates/tiny_lm.py.tmpl")
    deps = ['"llmos>=0.1"', '"pydantic>=2"']
    if stage in TORCH_STAGES:
        deps.append('"torch>=2.1"')
    if stage in ("data", "model"):
        deps.append('"transformers>=4.40"')
    if stage == "data":
        deps += ['"tokenizers>=0.15"', '"numpy>=1.24"']
    if stage == "deployment":
        deps.append('"safetensors>=0.4"')
    summary = summary or f"{desc} (an llmos {stage} plugin)"
    urls = f'\n[project.urls]\nSource = "{source_url}"\n' if source_url else ""
    place, insert, pipe_config, setup = PIPELINE_PLACES[stage]
    tests = ["llmos-data", "llmos-models", "llmos-train"]
    subs = {
        "__PLACE__": place, "__INSERT__": insert, "__PIPECONFIG__": pipe_config, "__SETUP__": setup,
        "__PLUGINS__": ", ".join(f'"{d}"' for d in tests),
        "__NAME__": name, "__PKG__": pkg, "__COMP__": comp, "__STAGE__": stage, "__HOOK__": STAGE_HOOKS[stage],
        "__CONFIG__": f"{prefix}Config", "__FACTORY__": factory, "__DESCRIPTION__": desc,
        "__SUMMARY__": summary.replace('"', "'"), "__LICENSE__": license, "__AUTHOR__": author,
        "__EMAIL__": f', email = "{email}"' if email else "", "__DEPS__": ", ".join(deps), "__URLS__": urls,
        "__TESTDEPS__": ", ".join(f'"{d}"' for d in ["pytest>=8", *tests]),
    }

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    files = {
        "pyproject.toml": fill(template("templates/pyproject.toml.tmpl")),
        f"src/{pkg}/__init__.py": f'"""{name}: an llmos {stage} plugin."""\n',
        f"src/{pkg}/plugin.py": fill(template("templates/plugin.py.tmpl")),
        f"src/{pkg}/components.py": body,
        "tests/test_plugin.py": fill(template("templates/test_head.py.tmpl")
                                     + template(f"templates/stages/{stage}/test_plugin.py.tmpl")
                                     + template("templates/stages/pipeline_test.py.tmpl")),
        "tests/tiny.toml": template("templates/tiny.toml"),
        "README.md": fill(template("templates/README.md.tmpl")),
        "LICENSE": template(f"licenses/{license}.txt").replace("{year}", str(dt.date.today().year))
        .replace("{holder}", author),
        ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n",
    }
    return _write_files(target, files)


def _write_files(target: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


def _write_kind(kind: str, name: str, pkg: str, comp: str, target: Path, *, author: str, email: str | None,
                license: str, summary: str | None, source_url: str | None) -> Path:
    """``--kind sink`` (lifecycle hooks appending every metric to a JSON Lines file) or an
    extension kind (:data:`EXTENSION_KINDS`): the files of ``templates/kinds/<kind>/``
    (``plugin.py``, its modules, ``test_plugin.py``, ``README.md``), whose generated test
    runs the standard tiny pipeline (``tests/tiny.toml``) with the plugin selected."""
    from importlib.resources import files as package_files

    ext = EXTENSION_KINDS.get(kind)
    if ext is None:  # the sink
        summary = summary or "A metric sink: every training step, evaluation and metric sample as JSON lines"
        deps, tests, keyword = ['"llmos>=0.1"'], ["llmos-data", "llmos-models", "llmos-train"], "sink"
    else:
        summary = summary or ext.summary
        deps = ['"llmos>=0.1"', '"pydantic>=2"', *(f'"{d}"' for d in ext.deps)]
        tests, keyword = list(ext.test_plugins), kind
    subs = {
        "__NAME__": name, "__PKG__": pkg, "__COMP__": comp, "__STAGE__": keyword,
        "__SUMMARY__": summary.replace('"', "'"), "__LICENSE__": license, "__AUTHOR__": author,
        "__EMAIL__": f', email = "{email}"' if email else "", "__DEPS__": ", ".join(deps),
        "__ENV__": f"{pkg.upper()}_PATH", "__ENVBATCH__": f"{pkg.upper()}_MAX_BATCH",
        "__URLS__": f'\n[project.urls]\nSource = "{source_url}"\n' if source_url else "",
        "__TESTDEPS__": ", ".join(f'"{d}"' for d in ["pytest>=8", *tests]),
        "__PLUGINS__": ", ".join(f'"{d}"' for d in tests),
    }
    if ext is not None:
        subs.update({"__HOOK__": ext.hook, "__XKIND__": ext.kind, "__WHAT__": ext.what,
                     "__SELECT__": ext.select.replace("__COMP__", comp), "__CONSUMER__": ext.consumer})

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    out = {
        "pyproject.toml": fill(template("templates/pyproject.toml.tmpl")),
        f"src/{pkg}/__init__.py": f'"""{name}: {"a metric sink" if ext is None else ext.what} for llmos."""\n',
        "tests/tiny.toml": template("templates/tiny.toml"),
        "README.md": fill(template(f"templates/kinds/{kind}/README.md.tmpl" if ext is None
                                   else "templates/kinds/README.md.tmpl")),
        "LICENSE": template(f"licenses/{license}.txt").replace("{year}", str(dt.date.today().year))
        .replace("{holder}", author),
        ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n",
    }
    folder = package_files("llmos_community").joinpath(f"templates/kinds/{kind}")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".py.tmpl"):
            continue
        module = entry.name.removesuffix(".tmpl")
        rel = f"tests/{module}" if module.startswith("test_") else f"src/{pkg}/{module}"
        out[rel] = fill(entry.read_text(encoding="utf-8"))
    return _write_files(target, out)
