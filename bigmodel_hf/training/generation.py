"""Batched generation from plain strings, for sample logging and the translate API.

Places inputs on the model's device, sorts by length so batches pad little, puts outputs back in input
order, and restores the model's train/eval mode afterwards (the sample callback runs mid-training).
"""

import torch

from .sharding import is_sharded


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
) -> list[str]:
    """Translate `texts` with a seq2seq model; returns one decoded string per input, in input order."""
    return _generate_sorted(
        model, tokenizer, [(source_prefix or "") + text for text in texts], batch_size,
        # as max_length (decoder start token + new tokens): generate warns when a checkpoint's saved
        # max_length meets max_new_tokens, and seq2seq outputs have no prompt to count anyway
        dict(num_beams=num_beams, length_penalty=length_penalty, max_length=max_new_tokens + 1),
        keep_prompt=False,
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


def _generate_sorted(model, tokenizer, texts, batch_size, generate_kwargs, keep_prompt) -> list[str]:
    was_training = model.training
    model.eval()
    if is_sharded(model):  # every process runs each forward until all are done (see training.sharding)
        generate_kwargs = dict(generate_kwargs, synced_gpus=True)
    padding_side = tokenizer.padding_side
    if keep_prompt:  # decoder-only: new tokens must follow the prompt directly, so pad on the left
        tokenizer.padding_side = "left"
    try:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs: list[str] = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            batch_ids = order[start:start + batch_size]
            batch = (_encode_prompts if keep_prompt else _encode)(tokenizer, [texts[i] for i in batch_ids])
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


def _encode(tokenizer, texts):
    return tokenizer(texts, return_tensors="pt", padding=True)


def _encode_prompts(tokenizer, texts):
    eos = tokenizer.eos_token_id
    ids = [row[:-1] if len(row) > 1 and row[-1] == eos else row for row in tokenizer(texts)["input_ids"]]
    return tokenizer.pad({"input_ids": ids}, return_tensors="pt")
