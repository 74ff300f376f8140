"""The text-generation run: text -> tokenizer -> packed blocks -> causal LM -> Trainer -> perplexity.

`recipes/generate_text.py` only calls `parse_text_generation_config` and `run_text_generation`. From
scratch, a byte-level BPE is trained on the corpus and a decoder-only `BigModelForCausalLM` is built from
a preset; from `--model_name_or_path`, any checkpoint `AutoModelForCausalLM` loads is fine-tuned (all
weights, or LoRA adapters with `--use_peft`), optionally converted into a BigModel first
(`--convert_to_bigmodel`, Llama family). Validation perplexity is token-weighted and computed in-process.
"""

import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from ..batching import PACKING_MODES, LMBlockCollator, pack_lm_blocks
from ..convert import convert_llama_model
from ..data import load_lm_dataset
from ..decoding import continue_texts, is_sharded
from ..metrics import perplexity_from_eval_prediction, sequence_nll_and_count, token_weighted_perplexity
from ..modeling_bigmodel import BigModelForCausalLM
from ..output_layout import OutputLayout
from ..tokenization import check_tokenizer_matches_model, tokenize_lm_dataset, train_lm_tokenizer
from .arguments import CausalLMArguments, ModelArguments, RunArguments, TextDataArguments
from .callbacks import build_callbacks
from .auto_settings import AUTO
from .config import RunConfig, parse_run_config
from .data_spec import resolve_data_spec, share_generated_data
from .defaults import LM_DEFAULTS
from .lora import add_lora, lora_setting_problems, save_model_or_adapters
from .packing import check_model_separates_documents
from .rerun import completed_run
from .runs import (
    capped, check_model_settings, finish_run, record_run, sized_to_tokenizer, start_run, take_over_trainer_push,
    tokenizer_for_run,
)
from .setting_checks import ConfigError
from .trainers import CausalLMTrainer

LM_ARGUMENT_TYPES = dict(
    model=ModelArguments, lm=CausalLMArguments, data=TextDataArguments, run=RunArguments, training=TrainingArguments,
)


def parse_text_generation_config(argv=None, default_config=None) -> RunConfig:
    run_config = parse_run_config(LM_ARGUMENT_TYPES, argv, LM_DEFAULTS, default_config)
    check_lm_settings(run_config)
    return run_config


def check_lm_settings(run_config: RunConfig) -> None:
    """Combinations of LM settings that cannot work, refused before anything is built."""
    model_args, lm, args = run_config.model, run_config.lm, run_config.training
    pretrained = bool(model_args.model_name_or_path)
    problems = [
        (run_config.data.packing not in PACKING_MODES,
         f"packing must be one of {', '.join(PACKING_MODES)}, got {run_config.data.packing!r}"),
        (lm.convert_to_bigmodel and not pretrained,
         "convert_to_bigmodel needs --model_name_or_path (a Llama checkpoint)"),
        *lora_setting_problems(lm, pretrained, args.push_to_hub),
        (model_args.preset == AUTO and not pretrained,
         "--preset auto chooses a translation model's settings; name a preset here (modern-small, the default, or "
         "another of configuration_bigmodel.PRESETS)"),
        (lm.use_peft and lm.convert_to_bigmodel and not lm.merge_lora,
         "adapters of a model converted on the fly have no base checkpoint on disk to load onto: add --merge_lora, "
         "or convert first (bigmodel-hf convert-llama SRC DST) and fine-tune DST"),
    ]
    problems = [text for bad, text in problems if bad]
    if problems:
        raise ConfigError("Invalid settings:\n  " + "\n  ".join(problems))


def load_text_data(data: TextDataArguments, output_dir: str, seed: int, write_files: bool = True):
    """Raw `text` documents with train and validation splits (validation carved from train if absent).

    `write_files=False` (processes other than the main one) reads the stdlib corpus the main process wrote.
    """
    spec = resolve_data_spec(data, "text-generation", output_dir, seed, write_files)
    raw = load_lm_dataset(spec, text_field=data.text_column, config_name=data.dataset_config_name,
                          validation_size=data.validation_split_percentage / 100 or None, seed=seed)
    raw["train"] = capped(raw["train"], data.max_train_samples)
    return raw


def build_tokenizer(model_args: ModelArguments, lm: CausalLMArguments, raw, training_args, resuming: bool):
    """The checkpoint's tokenizer, or a byte-level BPE trained on the training split; always with a pad token."""
    tokenizer = tokenizer_for_run(model_args, training_args, resuming, train=lambda save_dir: train_lm_tokenizer(
        raw["train"], vocab_size=lm.vocab_size, min_frequency=lm.tokenizer_min_frequency, save_dir=save_dir,
    ))
    if tokenizer.pad_token is None:  # GPT-2 and Llama tokenizers have none; batched generation needs one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(model_args: ModelArguments, lm: CausalLMArguments, tokenizer, block_size: int, config=None):
    """A pretrained causal LM (converted into a BigModel on request), or a new decoder-only BigModel of the
    run's `config` (see `check_model_settings`; built here when not given) sized to the tokenizer."""
    if model_args.model_name_or_path:
        model = AutoModelForCausalLM.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
            cache_dir=model_args.cache_dir, dtype=torch.float32,  # float32 master weights; bf16 is autocast
        )
        if lm.convert_to_bigmodel:
            if model.config.model_type != "llama":
                raise ConfigError(f"convert_to_bigmodel converts Llama-family checkpoints; "
                                  f"{model_args.model_name_or_path} is {model.config.model_type!r}.")
            model = convert_llama_model(model).train()
    else:
        config = config if config is not None else check_model_settings(model_args, is_encoder_decoder=False)
        model = BigModelForCausalLM(sized_to_tokenizer(config, tokenizer, model_args))
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and block_size > positions:
        raise ConfigError(f"block_size {block_size} exceeds the model's max_position_embeddings {positions}; "
                          "lower block_size.")
    check_tokenizer_matches_model(tokenizer, model.config)
    model.generation_config.update(  # the saved decoding defaults (max_length off: it would clash)
        do_sample=True, temperature=lm.temperature, top_p=lm.top_p, max_new_tokens=lm.max_new_tokens,
        max_length=None, pad_token_id=tokenizer.pad_token_id,
    )
    if lm.use_peft:
        model = add_lora(model, lm.lora_r, lm.lora_alpha, lm.lora_dropout, lm.lora_target_modules)
    return model


def sample_prompts(texts, count: int, max_chars: int = 40) -> list[str]:
    """The openings of the first `count` documents: up to `max_chars`, cut at the last whitespace there."""
    prompts = []
    for text in texts:
        if len(prompts) >= count:
            break
        text = text.strip()
        head = text[:max_chars]
        cut = max(head.rfind(space) for space in " \n\t") if len(text) > max_chars else -1
        prompt = (head[:cut] if cut > 0 else head).rstrip()
        if prompt:
            prompts.append(prompt)
    return prompts


def run_text_generation(run_config: RunConfig) -> dict:
    """Train and evaluate; returns the `eval_results.json` content. Writes the output directory layout."""
    started = time.perf_counter()
    model_args, lm, data, run, args = (run_config.model, run_config.lm, run_config.data, run_config.run,
                                       run_config.training)
    expected = check_model_settings(model_args, is_encoder_decoder=False)
    # run_config.yaml once the inputs have loaded; first, may this command continue what output_dir holds?
    layout, resume = start_run(run_config, model_config=expected, data=data)
    if finished := completed_run(resume, args):
        print(finished)
        return layout.read_eval_results()

    share_generated_data(data, "text-generation", args)
    with args.main_process_first(desc="loading data"):
        raw = load_text_data(data, args.output_dir, args.seed, write_files=args.should_save)
    tokenizer = build_tokenizer(model_args, lm, raw, args, resuming=resume is not None)
    model = build_model(model_args, lm, tokenizer, data.block_size, expected)
    if data.packing == "documents":
        check_model_separates_documents(model)
    record_run(run_config, data)
    tokenized = tokenize_lm_dataset(raw, tokenizer, num_proc=data.preprocessing_num_workers)
    blocks = {split: capped(pack_lm_blocks(documents, data.block_size, eos_token_id=tokenizer.eos_token_id,
                                           drop_remainder=split == "train", packing=data.packing),
                            None if split == "train" else data.max_eval_samples)
              for split, documents in tokenized.items()}
    push = take_over_trainer_push(args)  # pushed once at the end, with the card, instead of per checkpoint
    trainer = build_lm_trainer(run_config, model, tokenizer, raw, blocks)

    start = None if resume else evaluate_split(trainer, blocks["validation"], "validation_start")
    train_output = trainer.train(resume_from_checkpoint=resume)
    results = {split: evaluate_split(trainer, blocks[split], split)
               for split in ("validation", "test") if split in blocks}
    if start:
        results["validation"]["perplexity_at_start"] = start["perplexity"]
    # before saving: merging LoRA changes the model in place
    report(trainer, layout, results, raw["validation"]["text"], run.num_sample_outputs, lm)
    save_model_or_adapters(trainer, lm)
    finish_run(trainer, train_output, results, started, push, card=not lm.use_peft or lm.merge_lora)
    return results


def build_lm_trainer(run_config: RunConfig, model, tokenizer, raw, blocks) -> CausalLMTrainer:
    """The Trainer: token-weighted validation perplexity, sampled continuations, plot, early stopping."""
    lm, data, run, args = run_config.lm, run_config.data, run_config.run, run_config.training
    args.label_names = args.label_names or ["labels"]  # a PeftModel's forward hides them from the Trainer

    return CausalLMTrainer(
        model=model, args=args, train_dataset=blocks["train"], eval_dataset=blocks["validation"],
        data_collator=LMBlockCollator(tokenizer.pad_token_id), processing_class=tokenizer,
        compute_metrics=perplexity_from_eval_prediction, preprocess_logits_for_metrics=sequence_nll_and_count,
        max_tokens=data.max_tokens, wsd_decay_steps=lm.wsd_decay_steps,
        callbacks=build_callbacks(run, args, sampler(tokenizer, lm, args.seed), sample_prompts(
            raw["validation"]["text"], run.num_sample_outputs)),
    )


def sampler(tokenizer, lm: CausalLMArguments, seed: int):
    """`generate(model, prompts)` for the sample callback: the model's sampling defaults, drawn from their
    own seeded random stream, so samples are comparable across steps and training's RNG is untouched."""

    def generate(model, prompts):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return continue_texts(model, tokenizer, prompts, max_new_tokens=lm.max_new_tokens)

    return generate


def evaluate_split(trainer, blocks, split: str) -> dict:
    """Token-weighted perplexity of `blocks` (all processes take part; sums gathered exactly)."""
    output = trainer.predict(blocks, metric_key_prefix=split)
    sums = np.asarray(output.predictions, dtype=np.float64).reshape(-1, 2)
    result = token_weighted_perplexity(sums[:, 0], sums[:, 1].round().astype(np.int64))
    return {**result, "blocks": len(blocks)}


def report(trainer, layout: OutputLayout, results: dict, validation_texts, count: int, lm: CausalLMArguments) -> None:
    """Print the perplexities, and `count` samples of the final model (also in `generations/validation.txt`), on
    the main process; a sharded model samples on every process (each forward gathers from all of them)."""
    main = trainer.is_world_process_zero()
    if not (main or is_sharded(trainer.model)):
        return
    prompts = sample_prompts(validation_texts, count)
    outputs = sampler(trainer.processing_class, lm, trainer.args.seed)(trainer.model, prompts) if prompts else []
    if not main:
        return
    validation = results["validation"]
    start = validation.get("perplexity_at_start")
    print(f"\nvalidation perplexity: {validation['perplexity']:.2f}"
          + (f" (at start {start:.2f})" if start is not None else "")
          + f" over {validation['tokens']:,} tokens")
    if "test" in results:
        print(f"test perplexity: {results['test']['perplexity']:.2f} over {results['test']['tokens']:,} tokens")
    if not prompts:
        return
    layout.write_predictions("validation", "txt", [p + " " + o for p, o in zip(prompts, outputs)], kind="generations")
    for prompt, output in zip(prompts, outputs):
        print(f"  > {prompt}\n  = {output}")
