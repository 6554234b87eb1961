"""Hook module of llmos-compress (light: imports only llmos and click)."""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_compression_steps(register):
    from llmos_compress.config import DistillConfig, Int8Config, PruneConfig, QuantizeConfig

    register(
        "quantize",
        "llmos_compress.int8:QuantizeStep",
        config=QuantizeConfig,
        description="Quantize with any registered quantizer (method = ..., llmos components --kind quantizers)",
    )
    register(
        "int8",
        "llmos_compress.int8:Int8Step",
        config=Int8Config,
        description="Dynamic int8 quantization of nn.Linear layers (PyTorch's own); saved as int8 safetensors "
        "+ scales, reloaded by its own loader; compression.quantize with method = int8, its settings flat",
    )
    register(
        "prune",
        "llmos_compress.prune:PruneStep",
        config=PruneConfig,
        description="Magnitude pruning (unstructured, sparsity only) or structured pruning of MLP neurons and "
        "attention heads (really smaller and faster), with optional recovery fine-tune",
    )
    register(
        "distill",
        "llmos_compress.distill:DistillStep",
        config=DistillConfig,
        description="Knowledge distillation: a teacher trains the student with a*T^2*KL + (1-a)*CE",
    )


@hookimpl
def llmos_register_quantizers(register):
    from llmos_compress.config import Int8Config

    register("int8", "llmos_compress.int8:quantize", config=Int8Config,
             description="Dynamic int8 quantization of nn.Linear layers (PyTorch's own), reloaded by the int8 loader")


@hookimpl
def llmos_register_model_loaders(register):
    register("int8", "llmos_compress.int8:load_int8",
             description="Models quantized by compression.int8 (int8 safetensors + scales)")


@hookimpl
def llmos_register_commands(cli):
    # imported when used: ``llmos --help`` shows these lines without importing the module
    cli.add_lazy_command("compress", "llmos_compress.commands:compress",
                         "Compress version REF and register the result as a new version.")
    cli.add_lazy_command("compare", "llmos_compress.commands:compare",
                         "Print the trade-off table of versions REFS side by side.")
