"""LoRA adapters through `peft` (optional dependency: `pip install bigmodel-hf[lora]`), for both recipes.

PEFT's table of default target modules is keyed by `model_type` and does not know `bigmodel`, so the
modules are named here: given, or every attention projection the model has (`ATTENTION_PROJECTIONS`:
BigModel and Llama's `o_proj`, M2M100/NLLB/mBART's `out_proj`).

    model = add_lora(model, r=8, alpha=16, dropout=0.05, target_modules="q_proj,v_proj")
    model = add_lora(seq2seq_model, r=8, alpha=16, dropout=0.05, target_modules=None, task_type="SEQ_2_SEQ_LM")
    ... train ...
    save_lora_result(model, output_dir, merge=False)   # adapter_config.json + adapter_model.safetensors
    save_lora_result(model, output_dir, merge=True)    # a plain checkpoint with the adapters merged in
    load_lora_result(output_dir)                       # either kind back as a model
"""

from pathlib import Path

from .setting_checks import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj")


def _peft():
    try:
        import peft
    except ImportError as error:
        raise ConfigError("use_peft needs the peft package: pip install 'bigmodel-hf[lora]'") from error
    return peft


def lora_setting_problems(lora, pretrained: bool, push_to_hub: bool) -> list[tuple[bool, str]]:
    """(is it so, what is wrong) for LoRA settings (`arguments.LoraArguments`) that cannot work in either recipe."""
    return [
        (lora.use_peft and not pretrained,
         "use_peft trains adapters on a pretrained checkpoint: give --model_name_or_path"),
        (lora.merge_lora and not lora.use_peft, "merge_lora needs use_peft"),
        (lora.use_peft and not lora.merge_lora and push_to_hub,
         "push_to_hub shares a full model with its card: add --merge_lora to push a LoRA run"),
    ]


def add_lora(model, r: int, alpha: int, dropout: float, target_modules: str | None, task_type: str = "CAUSAL_LM"):
    """Wrap `model` in a `PeftModel` whose only trainable weights are LoRA adapters on `target_modules`
    (None: every attention projection it has). `task_type`: peft's `CAUSAL_LM` or `SEQ_2_SEQ_LM`."""
    peft = _peft()
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = ([name.strip() for name in target_modules.split(",") if name.strip()] if target_modules is not None
               else [name for name in ATTENTION_PROJECTIONS if name in present])
    missing = [name for name in targets if name not in present]
    if not targets or missing:
        raise ConfigError(f"lora_target_modules {missing or targets} name no module of this "
                          f"{type(model).__name__}; its linear layers include "
                          f"{sorted(n for n in present if 'proj' in n or 'attn' in n or 'fc' in n)[:12]}")
    config = peft.LoraConfig(task_type=peft.TaskType[task_type], r=r, lora_alpha=alpha, lora_dropout=dropout,
                             target_modules=targets)
    return peft.get_peft_model(model, config)


def save_lora_result(model, output_dir: str | Path, merge: bool):
    """Save the adapters, or the merged model; returns the model that was saved."""
    if merge:
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    return model


def save_model_or_adapters(trainer, lora) -> None:
    """The run's final save: the whole model (Trainer's save: weights, code files, tokenizer, generation config),
    or with LoRA the adapters / merged model plus the tokenizer and generation config."""
    if not lora.use_peft:
        trainer.save_model()
        return
    if trainer.args.should_save:
        output_dir = trainer.args.output_dir
        saved = save_lora_result(trainer.model, output_dir, merge=lora.merge_lora)
        saved.generation_config.save_pretrained(output_dir)
        trainer.processing_class.save_pretrained(output_dir)


def load_lora_result(path: str | Path, trust_remote_code: bool = False, **kwargs):
    """A causal LM from an output directory holding adapters (base model loaded from the path recorded in
    adapter_config.json) or a full / merged checkpoint; code shipped with it runs only with `trust_remote_code`."""
    if (Path(path) / ADAPTER_CONFIG).is_file():
        return _peft().AutoPeftModelForCausalLM.from_pretrained(str(path), trust_remote_code=bool(trust_remote_code),
                                                                **kwargs)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=bool(trust_remote_code), **kwargs)
