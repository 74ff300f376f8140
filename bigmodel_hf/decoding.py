"""How a trained model decodes plain strings: its saved decoding defaults, and batched generation.

Every place that decodes text (the translate command and API, the interactive engine, sample logging,
back-translation) goes through here, so they agree on defaults and on input handling. Generation places
inputs on the model's device, sorts by length so batches pad little, puts outputs back in input order,
and restores the model's train/eval mode afterwards (the sample callback runs mid-training).
"""

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

# the decoder start token + 128 new tokens, where a checkpoint saved no max_length
FALLBACK_MAX_LENGTH = 129


def is_sharded(model) -> bool:
    """True for a model whose parameters are split across processes (FSDP2 `fully_shard` or FSDP1), so that
    every process must take part in each of its forwards. transformers 5.25's `is_fsdp_managed_module` only
    knows models its own `apply_fsdp2` sharded, not Accelerate's."""
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    return isinstance(model, (FSDPModule, FullyShardedDataParallel)) or getattr(model, "_is_fsdp_managed_module", False)


@dataclass(frozen=True)
class DecodingSettings:
    num_beams: int
    length_penalty: float
    max_new_tokens: int


def decoding_settings(generation_config, num_beams: int | None = None, length_penalty: float | None = None,
                      max_new_tokens: int | None = None) -> DecodingSettings:
    """The settings of one call: each one given, else the model's saved default (`generation_config.json`,
    where the translation recipe stores the beam, length penalty and max length of its final evaluation)."""
    return DecodingSettings(
        num_beams=num_beams or generation_config.num_beams or 1,
        length_penalty=length_penalty if length_penalty is not None else (generation_config.length_penalty or 1.0),
        max_new_tokens=max_new_tokens or max_new_tokens_of(generation_config),
    )


def max_new_tokens_of(generation_config) -> int:
    """New tokens a seq2seq model may write by default: its saved `max_length` counts the decoder start token."""
    return max((generation_config.max_length or FALLBACK_MAX_LENGTH) - 1, 1)


@torch.no_grad()
def translate_texts(
    model,
    tokenizer,
    texts: list[str],
    num_beams: int = 1,
    length_penalty: float = 1.0,
    max_new_tokens: int = 128,
    batch_size: int = 32,
    source_prefix: str | None = None,
    max_source_length: int | None = None,
    progress: str | None = None,
    **generate_kwargs,
) -> list[str]:
    """Translate `texts` with a seq2seq model; returns one decoded string per input, in input order.

    `max_source_length` cuts longer inputs (in tokens); `progress` names a progress bar over the batches;
    other keyword arguments go to `generate` (e.g. `do_sample=True, top_k=10`)."""
    return _generate_sorted(
        model, tokenizer, [(source_prefix or "") + text for text in texts], batch_size,
        # as max_length (decoder start token + new tokens): generate warns when a checkpoint's saved
        # max_length meets max_new_tokens, and seq2seq outputs have no prompt to count anyway
        dict(num_beams=num_beams, length_penalty=length_penalty, max_length=max_new_tokens + 1, **generate_kwargs),
        keep_prompt=False, max_source_length=max_source_length, progress=progress,
    )


@torch.no_grad()
def continue_texts(
    model, tokenizer, prompts: list[str], max_new_tokens: int = 50, batch_size: int = 16, **generate_kwargs
) -> list[str]:
    """Continue `prompts` with a causal LM (left-padded, as decoder-only batched generation needs).

    A prompt is not a finished document: the EOS our LM tokenizers append to every text is removed.
    """
    return _generate_sorted(
        model, tokenizer, prompts, batch_size, dict(max_new_tokens=max_new_tokens, **generate_kwargs), keep_prompt=True
    )


def _generate_sorted(model, tokenizer, texts, batch_size, generate_kwargs, keep_prompt, max_source_length=None,
                     progress=None) -> list[str]:
    was_training = model.training
    model.eval()
    if is_sharded(model):  # every process runs each forward until all are done (training.sharding)
        generate_kwargs = dict(generate_kwargs, synced_gpus=True)
    padding_side = tokenizer.padding_side
    if keep_prompt:  # decoder-only: new tokens must follow the prompt directly, so pad on the left
        tokenizer.padding_side = "left"
    try:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs: list[str] = [""] * len(texts)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch") if progress else starts:
            batch_ids = order[start:start + batch_size]
            batch = _encode_prompts(tokenizer, [texts[i] for i in batch_ids]) if keep_prompt else \
                _encode(tokenizer, [texts[i] for i in batch_ids], max_source_length)
            batch = {k: v.to(model.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            generated = model.generate(**batch, **generate_kwargs)
            if keep_prompt:
                generated = generated[:, batch["input_ids"].shape[1]:]  # [batch, new tokens]
            for i, text in zip(batch_ids, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                outputs[i] = text.strip()
        return outputs
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)


def _encode(tokenizer, texts, max_length=None):
    return tokenizer(texts, return_tensors="pt", padding=True, truncation=max_length is not None,
                     max_length=max_length)


def _encode_prompts(tokenizer, texts):
    eos = tokenizer.eos_token_id
    ids = [row[:-1] if len(row) > 1 and row[-1] == eos else row for row in tokenizer(texts)["input_ids"]]
    return tokenizer.pad({"input_ids": ids}, return_tensors="pt")
