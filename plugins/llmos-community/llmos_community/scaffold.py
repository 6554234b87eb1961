'''``llmos plugin new NAME --stage STAGE``: a plugin distribution whose tests pass as generated.

The generated project::

    <name>/pyproject.toml          entry point in the `llmos` group -> <pkg>.plugin
    <name>/src/<pkg>/plugin.py     the light hook module (LLMOS_API = 2, no heavy imports)
    <name>/src/<pkg>/components.py a real minimal component for the stage (+ its config)
    <name>/tests/test_plugin.py    contract check + the component run on a real RunContext
    <name>/README.md, LICENSE

Heavy libraries (torch, safetensors) are imported inside the component functions.

The files come from package data: ``templates/`` (``*.tmpl``, with ``__NAME__``-style
placeholders; ``templates/stages/<stage>/`` per stage) and ``licenses/<SPDX id>.txt``.
'''

from __future__ import annotations

import datetime as dt
from pathlib import Path

from llmos.components import STAGE_HOOKS
from llmos.errors import ConflictError, ValidationError
from llmos_community import names

TORCH_STAGES = ("model", "optimizer", "compression", "deployment")

#: per stage: (config class prefix, factory function, one-line description)
STAGE_COMPONENTS = {
    "data": ("Lines", "make_lines", "A corpus read from a local text file, one example per line"),
    "model": ("Tiny", "make_tiny", "A tiny byte-level language model built from config"),
    "optimizer": ("Sgd", "make_sgd", "Train the model with plain SGD on next-byte prediction"),
    "compression": ("Prune", "make_prune", "Magnitude pruning of linear and embedding weights"),
    "deployment": ("Export", "make_export", "Export the model weights to a safetensors file"),
    "monitoring": ("Jsonl", "make_jsonl", "Append the run's latest metrics to a JSON Lines file"),
}
LICENSES = ("Apache-2.0", "MIT")


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
#: metric. The extension kinds (optimizer, schedule, reader, ...) are written once the
#: standard stage that consumes them is in this llmos.
KINDS = ("stage", "sink")
PLANNED_KINDS = ("optimizer", "schedule", "reader", "architecture", "eval-task", "quantizer", "export-format",
                 "engine")


def scaffold(name: str, stage: str | None, directory: Path, *, author: str = "Your Name", email: str | None = None,
             license: str = "Apache-2.0", summary: str | None = None, source_url: str | None = None,
             kind: str = "stage") -> Path:
    """Write the project into ``directory/<name>``; return its path."""
    if kind in PLANNED_KINDS:
        raise ValidationError(f"--kind {kind}: no standard stage of this llmos consumes {kind} plugins yet; "
                              f"write one from docs/hooks.md, or use --kind {' / '.join(KINDS)}")
    if kind not in KINDS:
        raise ValidationError(f"unknown kind {kind!r}: use one of {', '.join(KINDS + PLANNED_KINDS)}")
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
    if kind == "sink":
        return _write_sink(name, pkg, target, author=author, email=email, license=license, summary=summary,
                           source_url=source_url)
    prefix, factory, desc = STAGE_COMPONENTS[stage]
    body = template(f"templates/stages/{stage}/components.py.tmpl")
    if stage in TORCH_STAGES:
        body += template("templates/tiny_lm.py.tmpl")
    deps = ['"llmos>=0.1"', '"pydantic>=2"']
    if stage in TORCH_STAGES:
        deps.append('"torch>=2.1"')
    if stage == "deployment":
        deps.append('"safetensors>=0.4"')
    summary = summary or f"{desc} (an llmos {stage} plugin)"
    urls = f'\n[project.urls]\nSource = "{source_url}"\n' if source_url else ""
    subs = {
        "__NAME__": name, "__PKG__": pkg, "__COMP__": comp, "__STAGE__": stage, "__HOOK__": STAGE_HOOKS[stage],
        "__CONFIG__": f"{prefix}Config", "__FACTORY__": factory, "__DESCRIPTION__": desc,
        "__SUMMARY__": summary.replace('"', "'"), "__LICENSE__": license, "__AUTHOR__": author,
        "__EMAIL__": f', email = "{email}"' if email else "", "__DEPS__": ", ".join(deps), "__URLS__": urls,
        "__TESTDEPS__": '"pytest>=8"',
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
                                     + template(f"templates/stages/{stage}/test_plugin.py.tmpl")),
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


def _write_sink(name: str, pkg: str, target: Path, *, author: str, email: str | None, license: str,
                summary: str | None, source_url: str | None) -> Path:
    """``--kind sink``: lifecycle hooks appending every metric to a JSON Lines file; its
    generated test runs the standard tiny pipeline with the sink registered."""
    summary = summary or "A metric sink: every training step, evaluation and metric sample as JSON lines"
    subs = {
        "__NAME__": name, "__PKG__": pkg, "__STAGE__": "sink", "__SUMMARY__": summary.replace('"', "'"),
        "__LICENSE__": license, "__AUTHOR__": author, "__EMAIL__": f', email = "{email}"' if email else "",
        "__DEPS__": '"llmos>=0.1"', "__ENV__": f"{pkg.upper()}_PATH",
        "__URLS__": f'\n[project.urls]\nSource = "{source_url}"\n' if source_url else "",
        "__TESTDEPS__": '"pytest>=8", "llmos-data", "llmos-models", "llmos-train"',
    }

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    return _write_files(target, {
        "pyproject.toml": fill(template("templates/pyproject.toml.tmpl")),
        f"src/{pkg}/__init__.py": f'"""{name}: an llmos metric sink."""\n',
        f"src/{pkg}/plugin.py": fill(template("templates/kinds/sink/plugin.py.tmpl")),
        f"src/{pkg}/sink.py": fill(template("templates/kinds/sink/sink.py.tmpl")),
        "tests/test_plugin.py": fill(template("templates/kinds/sink/test_plugin.py.tmpl")),
        "tests/tiny.toml": template("templates/tiny.toml"),
        "README.md": fill(template("templates/kinds/sink/README.md.tmpl")),
        "LICENSE": template(f"licenses/{license}.txt").replace("{year}", str(dt.date.today().year))
        .replace("{holder}", author),
        ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n",
    })
