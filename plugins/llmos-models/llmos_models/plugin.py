"""Hook module of llmos-models (light: imports only llmos and click)."""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_model_steps(register):
    from llmos_models.config import (
        BuildConfig,
        EvaluateConfig,
        GPT2Config,
        LlamaConfig,
        LoadConfig,
        RegisterConfig,
    )

    register("llama", "llmos_models.build:LlamaStep", config=LlamaConfig,
             description="Llama-style decoder (RMSNorm, RoPE, SwiGLU) from a size preset: tiny ~1M, small ~10M, base ~30M; "
                         "model.build with architecture = llama, its settings flat")
    register("gpt2", "llmos_models.build:GPT2Step", config=GPT2Config,
             description="GPT-2-style decoder (LayerNorm, learned positions, GELU) from a size preset; model.build with "
                         "architecture = gpt2, its settings flat")
    register("build", "llmos_models.build:ArchitectureStep", config=BuildConfig,
             description="A model of any registered architecture (llmos components --kind architectures) from a preset")
    register("load", "llmos_models.steps:LoadStep", config=LoadConfig,
             description="Load a registered model version (or a local directory) as the model or the teacher")
    register("evaluate", "llmos_models.evaluate:EvaluateStep", config=EvaluateConfig,
             description="Validation loss/perplexity vs a unigram baseline, size, generation speed, samples")
    register("register", "llmos_models.steps:RegisterStep", config=RegisterConfig,
             description="Save the model (safetensors, HF layout) and register it as a new version")


@hookimpl
def llmos_register_architectures(register):
    from llmos_models.config import PRESETS, GPT2Config, LlamaConfig

    register("llama", "llmos_models.build:llama_hf_config", config=LlamaConfig, presets=PRESETS["llama"],
             description="Llama-style decoder (RMSNorm, RoPE, SwiGLU)")
    register("gpt2", "llmos_models.build:gpt2_hf_config", config=GPT2Config, presets=PRESETS["gpt2"],
             description="GPT-2-style decoder (LayerNorm, learned positions, GELU)")


@hookimpl
def llmos_register_model_loaders(register):
    register("hf", "llmos_models.io:load_hf",
             description="Hugging Face causal LM from safetensors (built-in architectures, no remote code)")
    register("adapter", "llmos_models.io:load_adapter",
             description="LoRA adapter versions (peft): the base found through the registry lineage, plus the "
             "adapter's tensors")


@hookimpl
def llmos_register_eval_tasks(register):
    from llmos_models.tasks import MultipleChoiceConfig, StdlibConfig

    register("multiple-choice", "llmos_models.tasks:MultipleChoiceTask", config=MultipleChoiceConfig,
             description="Multiple-choice log-likelihood task from a local lm-eval-harness task YAML (JSON Lines data)")
    register("stdlib-docstrings", "llmos_models.tasks:MultipleChoiceTask", config=StdlibConfig,
             description="Pick the true next sentence of a held-out stdlib docstring among 4 (shipped, built offline)")
    from llmos_models.gen_tasks import GenerationTaskConfig, StdlibCompletionConfig

    register("generation", "llmos_models.gen_tasks:GenerationTask", config=GenerationTaskConfig,
             description="Greedy generation for the prompts of a local lm-eval task YAML (generate_until), scored "
             "by generation metrics")
    register("stdlib-completion", "llmos_models.gen_tasks:GenerationTask", config=StdlibCompletionConfig,
             description="Finish the first sentence of a held-out stdlib docstring (shipped, built offline): "
             "exact match, BLEU, chrF")


@hookimpl
def llmos_register_eval_metrics(register):
    register("acc", "llmos_models.tasks:accuracy_metric",
             description="Multiple choice: 1 when the most likely choice is the gold one")
    register("acc_norm", "llmos_models.tasks:accuracy_norm_metric",
             description="Multiple choice: acc with log-likelihoods divided by each choice's length in bytes")
    from llmos_models.gen_metrics import ExactMatchConfig

    register("exact_match", "llmos_models.gen_metrics:exact_match_metric", config=ExactMatchConfig,
             description="Generation: share of outputs equal to the reference after normalisation (regexes_to_ignore, "
             "ignore_case, ignore_punctuation, ignore_numbers)")
    register("bleu", "llmos_models.gen_metrics:bleu_metric",
             description="Generation: corpus BLEU-4 (sacrebleu: 13a tokens, brevity penalty), 0-100")
    register("chrf", "llmos_models.gen_metrics:chrf_metric",
             description="Generation: corpus chrF (sacrebleu: character 6-grams, beta 2), 0-100")


@hookimpl
def llmos_register_commands(cli):
    # imported when used: ``llmos --help`` shows these lines without importing the modules
    cli.add_lazy_command("generate", "llmos_models.cli:generate",
                         "Complete PROMPT with a model and stream the tokens as they come.")
    cli.add_lazy_command("evaluate", "llmos_models.eval_cmd:evaluate",
                         "Run eval tasks on MODEL_REF and print (and record) task.<name>.v<version>.<metric>.")
    cli.add_lazy_command("merge", "llmos_models.merge_cmd:merge",
                         "Merge adapter version REF into its base and register the full model.")
