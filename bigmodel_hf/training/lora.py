"""LoRA adapters through `peft` (optional dependency: `pip install bigmodel-hf[lora]`).

PEFT's table of default target modules is keyed by `model_type` and does not know `bigmodel`, so the
modules are always named explicitly (`q_proj,k_proj,v_proj,o_proj` fits BigModel and Llama).

    model = add_lora(model, r=8, alpha=16, dropout=0.05, target_modules="q_proj,v_proj")
    ... train ...
    save_lora_result(model, output_dir, merge=False)   # adapter_config.json + adapter_model.safetensors
    save_lora_result(model, output_dir, merge=True)    # a plain checkpoint with the adapters merged in
    load_lora_result(output_dir)                       # either kind back as a model
"""

from pathlib import Path

from .setting_checks import ConfigError

ADAPTER_CONFIG = "adapter_config.json"


def _peft():
    try:
        import peft
    except ImportError as error:
        raise ConfigError("use_peft needs the peft package: pip install 'bigmodel-hf[lora]'") from error
    return peft


def add_lora(model, r: int, alpha: int, dropout: float, target_modules: str):
    """Wrap `model` in a `PeftModel` whose only trainable weights are LoRA adapters on `target_modules`."""
    peft = _peft()
    targets = [name.strip() for name in target_modules.split(",") if name.strip()]
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [name for name in targets if name not in present]
    if not targets or missing:
        raise ConfigError(f"lora_target_modules {missing or targets} name no module of this "
                          f"{type(model).__name__}; its linear layers include "
                          f"{sorted(n for n in present if 'proj' in n or 'attn' in n or 'fc' in n)[:12]}")
    config = peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=r, lora_alpha=alpha, lora_dropout=dropout,
                             target_modules=targets)
    return peft.get_peft_model(model, config)


def save_lora_result(model, output_dir: str | Path, merge: bool):
    """Save the adapters, or the merged model; returns the model that was saved."""
    if merge:
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    return model


def load_lora_result(path: str | Path, trust_remote_code: bool = False, **kwargs):
    """A causal LM from an output directory holding adapters (base model loaded from the path recorded in
    adapter_config.json) or a full / merged checkpoint; code shipped with it runs only with `trust_remote_code`."""
    if (Path(path) / ADAPTER_CONFIG).is_file():
        return _peft().AutoPeftModelForCausalLM.from_pretrained(str(path), trust_remote_code=bool(trust_remote_code),
                                                                **kwargs)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=bool(trust_remote_code), **kwargs)
