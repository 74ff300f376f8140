"""The run settings that are ours (not `TrainingArguments`), as dataclasses for `HfArgumentParser`.

Field names follow the Hugging Face example scripts (`run_translation.py`, `run_clm.py`) where one exists,
so a command line written for those scripts mostly works here. Every field is a flag (`--name value`)
and a key of the run's YAML file.
"""

from dataclasses import dataclass, field

import yaml

from .setting_checks import ConfigError


def parse_config_overrides(overrides) -> dict:
    """`"d_model=128,encoder_layers=2"` (values read as YAML scalars) or a mapping -> dict."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    pairs = [item.split("=", 1) for item in str(overrides).split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f"config_overrides must look like 'd_model=128,encoder_layers=2', got {overrides!r}.")
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Local folder or Hub id of a pretrained checkpoint to fine-tune; unset = train from scratch."},
    )
    preset: str = field(default="vaswani-small", metadata={
        "help": "BigModelConfig preset used from scratch. Translation: 'auto' (its default) also picks vocab_size, "
                "max_tokens and learning_rate from the corpus size and the device, where they are not given."})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "BigModelConfig fields over the preset, 'd_model=128,encoder_layers=2' (or a YAML mapping)."},
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id; unset = the checkpoint's, or train one."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow code shipped with the checkpoint."})
    load_legacy_bin: bool = field(
        default=False,
        metadata={"help": "Accept a checkpoint that only has pickled pytorch_model.bin weights (read with torch.load, "
                          "weights_only=True); off: safetensors only, nothing is unpickled."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are stored."})
    dropout: float | None = field(
        default=None, metadata={"help": "Residual dropout (after attention and FFN, on embeddings); unset = the "
                                        "preset's or checkpoint's."},
    )
    attention_dropout: float | None = field(
        default=None, metadata={"help": "Dropout on attention probabilities; unset = the preset's or checkpoint's."},
    )
    activation_dropout: float | None = field(
        default=None, metadata={"help": "Dropout inside the FFN, after the activation; unset = the preset's or "
                                        "checkpoint's."},
    )


    def __post_init__(self):
        # parsed here, once, as the flags are: a malformed value fails before anything runs; the flag's text
        # stays in `config_overrides` (what run_config.yaml records), the fields in `model_overrides`
        self.model_overrides = parse_config_overrides(self.config_overrides)

@dataclass
class TokenizerArguments:
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of a tokenizer trained from scratch."})
    tokenizer_type: str = field(default="bpe", metadata={"help": "Subword model trained from scratch: bpe or unigram."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "Minimum count of a merge when training it."})
    bpe_dropout: float = field(
        default=0.0,
        metadata={"help": "BPE-dropout on the training side only: each merge is skipped with this probability, "
                          "re-sampled every time a pair is batched (so every epoch); evaluation and the saved "
                          "tokenizer stay deterministic. 0 = off; 0.1 is the usual value. Needs a BPE tokenizer."},
    )
    added_special_tokens: str | None = field(
        default=None,
        metadata={"help": "Comma-separated tokens added to a tokenizer trained from scratch as atomic special "
                          "tokens (never split, never dropped out), e.g. the back-translation tag '<bt>'."},
    )


@dataclass
class TranslationDataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset name, or a local file/folder."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    train_file: str | None = field(default=None, metadata={
        "help": "Training pairs (.jsonl, .tsv, .csv, .parquet). With --language_pairs: several JSON Lines files of "
                "`translation` rows, comma-separated in one string (a,b,c)."})
    validation_file: str | None = field(default=None, metadata={
        "help": "Validation pairs (with --language_pairs: several files, comma-separated)."})
    test_file: str | None = field(default=None, metadata={"help": "Test pairs."})
    language_pairs: str | None = field(default=None, metadata={
        "help": "Train one multilingual model: the directions, comma-separated source-target with the codes of the "
                "data's `translation` keys (en-de,de-en,en-pt_BR). A row serves every listed pair whose two "
                "languages it holds; each target language gets its own token. Replaces --source_lang/--target_lang."})
    language_sampling_temperature: float | None = field(default=None, metadata={
        "help": "With --language_pairs: draw the pairs' batches with p ~ (share of pairs) ** (1/T); 1 = as in the "
                "data, larger = flatter. Unset: 5 with several pairs."})
    source_lang: str = field(default="en", metadata={"help": "Source language code."})
    target_lang: str = field(default="es", metadata={"help": "Target language code."})
    source_prefix: str | None = field(default=None, metadata={"help": "Text put before every source (T5 style)."})
    max_source_length: int = field(default=128, metadata={"help": "Source tokens kept per example."})
    max_target_length: int = field(default=128, metadata={"help": "Target tokens kept per example."})
    clean_data: bool = field(
        default=True, metadata={"help": "Drop bad, duplicate and eval-overlapping training pairs (report in output dir)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training pairs (debugging)."})
    max_eval_samples: int | None = field(
        default=500, metadata={"help": "Validation pairs decoded at each evaluation during training (length-sorted; "
                                        "with --language_pairs, shared evenly among the directions)."}
    )
    max_predict_samples: int | None = field(default=None, metadata={"help": "Cap on pairs in the final evaluation."})
    num_beams: int = field(default=4, metadata={"help": "Beam size of the final validation/test decoding."})
    length_penalty: float = field(default=1.0, metadata={"help": "Length penalty of the final beam search."})
    max_tokens: int | None = field(
        default=None,
        metadata={"help": "Token budget per training batch per device (replaces per_device_train_batch_size)."},
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for cleaning and tokenization (the result is the same as with one)."}
    )
    data_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Keep the cleaned pairs, the trained tokenizer and the tokenised splits here, keyed on the "
                          "data files' contents and the settings, and reuse them when a later run matches (logged as "
                          "a hit or a miss). Unset = no cache."},
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the training pairs (a JSON Lines --train_file, or a --dataset_name the Hub streams) "
                          "instead of preparing them up front: cleaned, tokenised and batched on the fly, in constant "
                          "memory. Needs --max_steps and --validation_file."},
    )
    streaming_tokenizer_sample: int = field(
        default=100_000,
        metadata={"help": "With --streaming: a tokenizer trained from scratch learns from the first this many cleaned "
                          "training pairs."},
    )
    streaming_buffer_size: int = field(
        default=100_000,
        metadata={"help": "With --streaming: cleaned pairs sorted into length buckets and batched together (more: "
                          "less padding and better shuffling, more memory)."},
    )


@dataclass
class TextDataArguments:
    """Data of the text-generation recipe (names from `run_clm.py`)."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset name, or a local file/folder."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Training text (.txt, .jsonl, .parquet)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation text."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text in structured files."})
    block_size: int = field(default=256, metadata={"help": "Tokens per packed training block."})
    packing: str = field(
        default="concat",
        metadata={"help": "How documents share a block: concat (run_clm.py's grouping: a token also attends to the "
                          "end of the previous document) or documents (position ids restart at each document and "
                          "attention stays inside it, as with transformers' DataCollatorWithFlattening). "
                          "benchmarks/results/packing.md: same quality on lm_web, documents about 5% slower."},
    )
    validation_split_percentage: float = field(
        default=2.0, metadata={"help": "Percent of train held out when there is no validation split."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training documents."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Cap on validation blocks."})
    max_tokens: int | None = field(default=None, metadata={"help": "Token budget per training batch per device."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})


@dataclass
class RunArguments:
    early_stopping_patience: int = field(
        default=0, metadata={"help": "Stop after this many evaluations without improvement; 0 = never."}
    )
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "Smallest change that counts."})
    average_last_checkpoints: int = field(
        default=0, metadata={"help": "Average the weights of the last N checkpoints at the end; 0 = off."}
    )
    max_train_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop training after this many minutes of training (evaluation time excluded); the "
                          "final evaluation still runs. Unset = no wall-clock limit. Translation: without "
                          "num_train_epochs or max_steps, the budget alone ends the run (the 10-epoch default "
                          "is lifted)."},
    )
    train_clock: str = field(
        default="wall",
        metadata={"help": "What max_train_minutes counts: wall (elapsed time) or cpu (this process's CPU time, "
                          "all its threads). cpu gives runs on a shared machine the same amount of computation "
                          "whatever share of the cores they get."},
    )
    budget_schedule: bool = field(
        default=False,
        metadata={"help": "With max_train_minutes and lr_scheduler_type linear, cosine or warmup_stable_decay: "
                          "size the decay by the time budget (whichever of max_steps and the budget is spent "
                          "first), so the rate reaches its floor when training stops; the warmup still counts "
                          "steps. The translation recipe turns it on, with warmup_stable_decay, for a run with "
                          "max_train_minutes that sets neither this nor lr_scheduler_type."},
    )
    num_sample_outputs: int = field(
        default=4, metadata={"help": "Sample translations/generations logged at each evaluation."}
    )
    plot: bool = field(default=True, metadata={"help": "Write a PNG of loss and metric curves to the output dir."})
    data_note: str | None = field(
        default=None,
        metadata={"help": "What a user of the model must know about its training data (origin, register, domain): "
                          "one or two sentences for the model card's limitations."},
    )
    allow_data_change: bool = field(
        default=False,
        metadata={"help": "Resume a checkpoint on training data other than it was trained on (otherwise refused); "
                          "applies to this command only, not recorded in run_config.yaml."},
    )


@dataclass
class LoraArguments:
    """LoRA adapters (`peft`) instead of all weights, for a fine-tune of a pretrained checkpoint (both recipes)."""

    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft) instead of all weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={"help": "Comma-separated module names that get adapters; unset = every attention projection the "
                          "model has (q_proj,k_proj,v_proj and o_proj or out_proj: BigModel, Llama, M2M100, NLLB, "
                          "mBART; GPT-2: give c_attn,c_proj)."},
    )
    merge_lora: bool = field(
        default=False, metadata={"help": "Save the base model with the adapters merged in, instead of the adapters."}
    )


@dataclass
class CausalLMArguments(LoraArguments):
    """The text-generation recipe's own settings: tokenizer from scratch, conversion, LoRA, sampling."""

    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of the byte-level BPE trained from scratch."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "Minimum count of a merge when training it."})
    convert_to_bigmodel: bool = field(
        default=False, metadata={"help": "Convert a Llama-family --model_name_or_path into BigModelForCausalLM first."}
    )
    wsd_decay_steps: float = field(
        default=0.2,
        metadata={"help": "lr_scheduler_type warmup_stable_decay: steps of the final decay (below 1: a fraction "
                          "of all steps), unless lr_scheduler_kwargs gives num_decay_steps."},
    )
    max_new_tokens: int = field(default=48, metadata={"help": "Tokens generated per sample (and the saved default)."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of samples and saved default."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling of samples and saved default."})
