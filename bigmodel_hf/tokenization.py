"""Tokenizers for both recipes: train one from scratch with `tokenizers`, or reuse a checkpoint's.

Trained tokenizers have fixed special ids matching `BigModelConfig` defaults: `<pad>`=0, `<s>`=1 (BOS,
also the decoder start token), `</s>`=2 (EOS), `<unk>`=3. Their post-processor appends EOS to every
sequence and adds no BOS, so translation labels end with EOS and do not start with BOS (the model
builds decoder inputs by shifting labels right behind BOS). They are returned as
`PreTrainedTokenizerFast` and reload with `AutoTokenizer.from_pretrained(dir)` with identical ids.

The checks here (`check_tokenizer_matches_model`) run before training, so a tokenizer and a model that
disagree on ids fail at start rather than as a crash in the embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .data.errors import DataError

logger = logging.getLogger(__name__)

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
_BATCH = 1000


def _text_batches(texts, columns: tuple[str, ...]) -> Iterator[list[str]]:
    """Yield lists of strings from a Dataset(Dict) (given columns, train split) or an iterable of str."""
    if isinstance(texts, DatasetDict):
        texts = texts["train"]
    if isinstance(texts, Dataset):
        missing = [c for c in columns if c not in texts.column_names]
        if missing:
            raise DataError(f"dataset lacks column(s) {missing} (has {texts.column_names}).")
        for batch in texts.select_columns(list(columns)).iter(batch_size=_BATCH):
            for column in columns:
                yield batch[column]
        return
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings or a Dataset, not a single str.")
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _wrap(tokenizer: Tokenizer, model_max_length: int, save_dir) -> PreTrainedTokenizerFast:
    ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    if ids != [PAD_ID, BOS_ID, EOS_ID, UNK_ID]:  # the trainers put special tokens first, in order
        raise RuntimeError(f"special token ids came out as {ids}, expected [0, 1, 2, 3]")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, unk_token=UNK_TOKEN,
        add_bos_token=False, add_eos_token=True,  # transformers builds the EOS-appending post-processor
        model_max_length=model_max_length, padding_side="right",
    )
    if save_dir is not None:
        fast.save_pretrained(str(Path(save_dir)))
    return fast


def train_translation_tokenizer(
    texts: Dataset | DatasetDict | Iterable[str],
    vocab_size: int = 16000,
    model_type: str = "bpe",
    *,
    min_frequency: int = 2,
    model_max_length: int = 1024,
    save_dir: str | Path | None = None,
    added_special_tokens: Iterable[str] = (),
    initial_alphabet: Iterable[str] = (),
    placeholders: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a joint source+target subword tokenizer (`model_type` "bpe" or "unigram").

    `initial_alphabet`: characters kept in the vocabulary even if `texts` (a sample, say) lacks them.
    `placeholders` (`%s`, `{0}`): each becomes one token, alone or after a space, never split; the spaces are
    then marked by the normalizer (" " -> "▁") so a placeholder's token can hold the space before it. Without
    placeholders the tokenizer is exactly the plain one (bilingual runs are unchanged).
    """
    placeholders = list(dict.fromkeys(placeholders))
    # placeholder tokens (two spellings each) come out of the vocabulary budget
    budget = vocab_size - 2 * len(placeholders)
    if model_type == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
        trainer = trainers.BpeTrainer(vocab_size=budget, min_frequency=min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                      initial_alphabet=sorted(set(initial_alphabet)))
    elif model_type == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=budget, special_tokens=list(SPECIAL_TOKENS),
                                          unk_token=UNK_TOKEN, show_progress=False,
                                          initial_alphabet=sorted(set(initial_alphabet)))
    else:
        raise ValueError(f"model_type must be 'bpe' or 'unigram', not {model_type!r}")
    if placeholders:
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(" ", "▁")])
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        tokenizer.decoder = decoders.Metaspace(prepend_scheme="first")
    else:
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(_text_batches(texts, ("source", "target")), trainer=trainer)
    # Added after training, so a tag such as "<bt>" is one atomic token that no merge (or BPE-dropout) touches.
    tokenizer.add_special_tokens(list(added_special_tokens))
    # Matched in the normalized text, before any merge: "%1$s" and " %1$s" are always one token each.
    tokenizer.add_tokens([AddedToken(spelling, normalized=True, special=False)
                          for text in placeholders for spelling in (text, "▁" + text)])
    logger.info("trained %s translation tokenizer: %d tokens", model_type, tokenizer.get_vocab_size())
    return _wrap(tokenizer, model_max_length, save_dir)


def train_lm_tokenizer(
    texts: Dataset | DatasetDict | Iterable[str],
    vocab_size: int = 16000,
    *,
    min_frequency: int = 2,
    model_max_length: int = 2048,
    save_dir: str | Path | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer for language modelling (any text encodes without `<unk>`)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_text_batches(texts, ("text",)), trainer=trainer)
    logger.info("trained byte-level BPE tokenizer: %d tokens", tokenizer.get_vocab_size())
    return _wrap(tokenizer, model_max_length, save_dir)


def load_pretrained_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False, **kwargs) -> PreTrainedTokenizerBase:
    """The tokenizer of a pretrained checkpoint (local folder or Hub id), via `AutoTokenizer`; code shipped
    with it runs only with `trust_remote_code=True` (never asked on stdin)."""
    return AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=bool(trust_remote_code), **kwargs)


def check_tokenizer_matches_model(tokenizer: PreTrainedTokenizerBase, config) -> None:
    """Raise `DataError` unless every token id fits the model and the special ids agree."""
    size = len(tokenizer)
    if size > config.vocab_size:
        raise DataError(
            f"tokenizer {tokenizer.name_or_path!r} has {size} tokens but the model's vocab_size is "
            f"{config.vocab_size}: ids >= {config.vocab_size} would index past the embedding table. Build the "
            f"model with vocab_size={size} (or call model.resize_token_embeddings({size})), or use the "
            "tokenizer the model was trained with."
        )
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        ours, theirs = getattr(tokenizer, name, None), getattr(config, name, None)
        if isinstance(theirs, (list, tuple)) and ours in theirs:  # several EOS ids allowed
            continue
        if ours is not None and theirs is not None and ours != theirs:
            raise DataError(f"tokenizer {name}={ours} but model config {name}={theirs}; set "
                            f"config.{name}={ours} or use a matching tokenizer.")
    start = getattr(config, "decoder_start_token_id", None)
    if getattr(config, "is_encoder_decoder", False) and start is not None and tokenizer.bos_token_id is not None \
            and start != tokenizer.bos_token_id:
        raise DataError(f"config.decoder_start_token_id={start} but the tokenizer's BOS id is "
                        f"{tokenizer.bos_token_id}; labels are shifted right behind BOS, so set them equal.")


def tokenize_translation_dataset(
    dataset: DatasetDict | Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    num_proc: int | None = None,
) -> DatasetDict | Dataset:
    """`source`/`target` -> `input_ids`, `attention_mask`, `labels` (truncated if lengths given)."""

    def encode(batch):
        enc = tokenizer(batch["source"], truncation=max_source_length is not None, max_length=max_source_length)
        labels = tokenizer(text_target=batch["target"], truncation=max_target_length is not None,
                           max_length=max_target_length)["input_ids"]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}

    probe = tokenizer(text_target=["a"])["input_ids"][0]
    if tokenizer.bos_token_id is not None and probe and probe[0] == tokenizer.bos_token_id:
        logger.warning("this tokenizer puts BOS at the start of labels; the model prepends BOS itself, "
                       "so decoder inputs will start with BOS twice")
    if tokenizer.eos_token_id is not None and (not probe or probe[-1] != tokenizer.eos_token_id):
        logger.warning("this tokenizer does not end labels with EOS; a model that never sees EOS never stops")
    columns = next(iter(dataset.values())).column_names if isinstance(dataset, DatasetDict) else dataset.column_names
    return dataset.map(encode, batched=True, batch_size=_BATCH, remove_columns=columns, num_proc=num_proc)


def tokenize_lm_dataset(
    dataset: DatasetDict | Dataset, tokenizer: PreTrainedTokenizerBase, *, num_proc: int | None = None
) -> DatasetDict | Dataset:
    """`text` -> `input_ids` per document (our tokenizers end each with EOS). Empty documents are dropped."""
    if isinstance(dataset, DatasetDict):
        return DatasetDict({split: tokenize_lm_dataset(ds, tokenizer, num_proc=num_proc)
                            for split, ds in dataset.items()})
    non_empty = dataset.filter(lambda batch: [bool(t.strip()) for t in batch["text"]], batched=True,
                               batch_size=_BATCH, num_proc=num_proc)
    if len(non_empty) < len(dataset):
        logger.info("tokenize_lm_dataset: dropped %d empty documents of %d", len(dataset) - len(non_empty),
                    len(dataset))

    def encode(batch):
        return {"input_ids": tokenizer(batch["text"], add_special_tokens=True)["input_ids"]}

    return non_empty.map(encode, batched=True, batch_size=_BATCH, remove_columns=non_empty.column_names,
                         num_proc=num_proc)
