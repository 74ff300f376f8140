"""`--streaming` in the translation recipe: settings checks, the splits a streamed run loads up front
(validation/test, small, map-style; train only as the tokenizer's sample), the training stream, and its
position saved with every checkpoint so a resumed run continues where the stopped one was.

The stream itself (reading, cleaning, batching, sharing between processes) is `bigmodel_hf.streaming`.
"""

import json
import logging
from pathlib import Path

import numpy as np
from transformers import TrainerCallback

from ..data import clean_translation_dataset, load_translation_dataset
from ..data.cleaning import write_cleaning_report
from ..streaming import StreamingBatches, TranslationStream, eval_pair_hashes, sample_pairs
from .setting_checks import ConfigError

logger = logging.getLogger(__name__)

POSITION_NAME = "stream_position.json"
SEEN_NAME = "stream_seen.npy"  # the cleaner's memory: 8 bytes per distinct training pair read so far


def check_streaming_settings(data, args, tokenizer_args) -> None:
    """The settings `--streaming` needs or cannot honour, refused before any work."""
    if args.max_steps is None or args.max_steps <= 0:
        raise ConfigError("--streaming needs --max_steps N: a stream has no length to count epochs by.")
    if not data.validation_file:
        raise ConfigError("--streaming needs --validation_file (a local file): validation pairs cannot be carved "
                          "from a stream.")
    if tokenizer_args.bpe_dropout:
        raise ConfigError("--bpe_dropout re-encodes the training text in each batch; it does not work with "
                          "--streaming yet. Drop one of the two.")
    if data.streaming_tokenizer_sample < 1 or data.streaming_buffer_size < 1:
        raise ConfigError("--streaming_tokenizer_sample and --streaming_buffer_size must be at least 1.")


def load_streamed_parallel_data(data, seed: int):
    """`(raw, stream, eval_hashes)`: raw holds the cleaned validation/test splits and, as `train`, the
    tokenizer's sample (the first `streaming_tokenizer_sample` cleaned training pairs); `stream` reads the
    training pairs (`--train_file`, or `--dataset_name` streamed from the Hub); `eval_hashes` are what the
    `eval_overlap` rule drops."""
    source = data.train_file or data.dataset_name
    stream = TranslationStream(source, src_lang=data.source_lang, tgt_lang=data.target_lang,
                               config_name=data.dataset_config_name, max_rows=data.max_train_samples)
    evaluation = {split: path for split in ("validation", "test") if (path := getattr(data, f"{split}_file"))}
    # the loader wants a train split: the validation file stands in, dropped at once
    raw = load_translation_dataset({"train": evaluation["validation"], **evaluation}, src_lang=data.source_lang,
                                   tgt_lang=data.target_lang, validation_size=None, seed=seed)
    del raw["train"]
    if data.clean_data:
        raw, _report = clean_translation_dataset(raw, filter_splits=())
    hashes = eval_pair_hashes(raw) if data.clean_data else frozenset()
    if data.source_prefix:
        raw = raw.map(lambda row: {"source": data.source_prefix + row["source"]})
    raw["train"] = sample_pairs(stream, data.streaming_tokenizer_sample, hashes, clean=data.clean_data)
    return raw, stream, hashes


def training_stream(stream: TranslationStream, tokenizer, data, args, eval_hashes) -> StreamingBatches:
    """This process's endless training batches."""
    return StreamingBatches(
        stream, tokenizer, max_tokens=data.max_tokens,
        max_sentences=None if data.max_tokens else args.per_device_train_batch_size,
        max_source_length=data.max_source_length, max_target_length=data.max_target_length,
        source_prefix=data.source_prefix, buffer_size=data.streaming_buffer_size,
        seed=args.data_seed if args.data_seed is not None else args.seed,
        rank=args.process_index, world_size=max(1, args.world_size), eval_hashes=eval_hashes,
        clean=data.clean_data,
    )


def restore_position(batches: StreamingBatches, checkpoint: str) -> None:
    """Continue the stream where `checkpoint` left it (from its start if the checkpoint has no position)."""
    folder = Path(checkpoint)
    if not (folder / POSITION_NAME).is_file():
        logger.warning("%s holds no stream position; the stream starts from its beginning.", folder)
        return
    state = json.loads((folder / POSITION_NAME).read_text("utf-8"))
    if state.get("cleaner") is not None:
        state["cleaner"]["seen"] = np.load(folder / SEEN_NAME)
    batches.load_state_dict(state)
    logger.info("stream resumed at epoch %d, row %d (chunk %d, %d batches of it already trained on)",
                state["epoch"], state["row"], state["chunk"], state["taken"])


class StreamPositionCallback(TrainerCallback):
    """Writes the stream's position into every checkpoint (main process; every process holds the same)."""

    def __init__(self, batches: StreamingBatches):
        self.batches = batches

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():
            return
        position = dict(self.batches.state_dict())
        cleaner = position.get("cleaner")
        if cleaner is not None:
            np.save(folder / SEEN_NAME, cleaner["seen"])
            position["cleaner"] = {"tally": cleaner["tally"]}
        (folder / POSITION_NAME).write_text(json.dumps(position, indent=1, ensure_ascii=False) + "\n", "utf-8")


def write_stream_report(batches: StreamingBatches, output_dir: str, sample_size: int) -> dict:
    """`cleaning_report.json` of the pairs streamed (`complete` once the stream was read through) and the
    summary kept in eval_results.json."""
    report = batches.cleaning_report()
    write_cleaning_report(report, output_dir)
    position = batches.state_dict()
    return {"tokenizer_sample_pairs": sample_size, "epoch": position["epoch"], "rows_read_this_epoch": position["row"],
            "first_pass_complete": report["complete"]}
