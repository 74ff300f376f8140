"""The translation run: data -> tokenizer -> model -> Seq2SeqTrainer -> final beam-search evaluation.

`recipes/translate.py` only calls `parse_translation_config` and `run_translation`. Every step is a
function of the parsed arguments, so tests and other entry points can reuse them one by one.
"""

import time
from dataclasses import replace
from functools import partial

from datasets import DatasetDict

from safetensors import SafetensorError
from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainingArguments

from ..batching import make_seq2seq_collator
from ..data import clean_translation_dataset, load_translation_dataset
from ..data.cleaning import write_cleaning_report
from ..data.stages import StageLog
from ..decoding import max_new_tokens_of, translate_texts
from ..languages import sampling_probabilities
from ..metrics import corpus_translation_scores
from ..modeling_bigmodel import BigModelForSeq2SeqLM
from ..output_layout import strip_metric_prefix
from ..pretrained import record_source_prefix
from ..subword_regularization import TEXT_COLUMNS, SubwordDropoutCollator, dropout_tokenizer, with_text_columns
from ..tokenization import (
    check_tokenizer_matches_model, load_pretrained_tokenizer, tokenize_translation_dataset, train_translation_tokenizer,
)
from .arguments import (
    LoraArguments, ModelArguments, RunArguments, TokenizerArguments, TranslationDataArguments, parse_config_overrides,
)
from .callbacks import build_callbacks, wall_clock_report
from .data_cache import DataCache, tokenizer_fingerprint
from .checkpoints import average_last_checkpoints, list_checkpoints, load_weights
from .auto_settings import settle_auto_preset
from .config import RunConfig, parse_run_config
from .data_spec import resolve_data_spec, share_generated_data
from .defaults import TRANSLATION_BUDGET_DEFAULTS, TRANSLATION_DEFAULTS
from .evaluation import TranslationMetrics, length_sorted_subset
from .lora import add_lora, lora_setting_problems, save_model_or_adapters
from .multilingual import (
    MultilingualTranslationTrainer, average_over_directions, check_multilingual_settings, column, direction_sizes,
    evaluation_subset, language_special_tokens, language_start_tokens, load_multilingual_data,
    multilingual_tokenizer_inputs, report_tokens_per_word, split_by_direction, temperature_of, tokenize_multilingual,
)
from .precision import short_sequence_bf16_attention, training_length_multiple
from .rerun import completed_run
from .runs import (
    capped, check_model_settings, dropout_settings, finish_run, record_run, sized_to_tokenizer, start_run,
    take_over_trainer_push, tokenizer_for_run,
)
from .setting_checks import ConfigError
from .stock_multilingual import (
    check_stock_settings, checkpoint_family, forced_bos_hook, set_bilingual_direction, stock_family,
    tokenize_by_direction,
)
from .streamed_data import (
    StreamPositionCallback, check_streaming_settings, load_streamed_parallel_data, restore_position, training_stream,
    write_stream_report,
)
from .trainers import TranslationTrainer

__all__ = ["parse_config_overrides", "parse_translation_config", "run_translation"]

TRANSLATION_ARGUMENT_TYPES = dict(
    model=ModelArguments, tokenizer=TokenizerArguments, data=TranslationDataArguments, run=RunArguments,
    lora=LoraArguments, training=Seq2SeqTrainingArguments,
)


def parse_translation_config(argv=None, default_config=None, values=None) -> RunConfig:
    run_config = parse_run_config(TRANSLATION_ARGUMENT_TYPES, argv, TRANSLATION_DEFAULTS, default_config, values,
                                  budget_defaults=TRANSLATION_BUDGET_DEFAULTS,
                                  choose_settings=settle_auto_preset)
    problems = [text for bad, text in lora_setting_problems(
        run_config.lora, bool(run_config.model.model_name_or_path), run_config.training.push_to_hub) if bad]
    if problems:
        raise ConfigError("Invalid settings: " + "; ".join(problems))
    return run_config


def load_parallel_data(data: TranslationDataArguments, output_dir: str, seed: int, write_files: bool = True,
                       stages: StageLog | None = None, cache: DataCache | None = None):
    """Raw `source`/`target` pairs with train/validation/test splits, cleaned (report in the output dir).

    `write_files=False` (processes other than the main one) writes nothing: it reads the built-in corpus the
    main process wrote (`data_spec.share_generated_data` copies it to every machine first) and keeps the
    cleaning report to itself.
    `stages` records what loading and cleaning did and took; `cache` keeps and reuses the result.
    """
    stages = stages if stages is not None else StageLog()
    if cache is None:
        return _load_and_clean(data, output_dir, seed, write_files, stages)[0]
    made = {}

    def make():
        raw, made["report"] = _load_and_clean(data, output_dir, seed, write_files, stages)
        return raw

    with stages.stage("cleaned pairs (cache)") as record:
        raw = cache.datasets("cleaned pairs", make)
        record["cache"] = "hit" if cache.hits["cleaned pairs"] else "miss"
        record["rows_in"] = record["rows_out"] = sum(len(split) for split in raw.values())
    report = cache.json("cleaning report", lambda: made.get("report") or {})
    if report and cache.hits["cleaned pairs"]:
        write_cleaning_report(report, output_dir)
    return raw


def _load_and_clean(data, output_dir, seed, write_files, stages) -> tuple:
    spec = resolve_data_spec(data, "translation", output_dir, seed, write_files)
    with stages.stage("load") as record:
        raw = load_translation_dataset(
            spec, src_lang=data.source_lang, tgt_lang=data.target_lang, config_name=data.dataset_config_name,
            validation_size=0.02, seed=seed,
        )
        raw["train"] = capped(raw["train"], data.max_train_samples)
        record["rows_in"] = record["rows_out"] = sum(len(split) for split in raw.values())
    report = None
    if data.clean_data:
        with stages.stage("clean", rows_in=sum(len(split) for split in raw.values()),
                          workers=data.preprocessing_num_workers or 1) as record:
            raw, report = clean_translation_dataset(raw, report_dir=output_dir if write_files else None,
                                                   num_proc=data.preprocessing_num_workers)
            record["rows_out"] = sum(len(split) for split in raw.values())
    if data.source_prefix:
        raw = raw.map(lambda row: {"source": data.source_prefix + row["source"]})
    return raw, report


def build_tokenizer(model_args: ModelArguments, tok_args: TokenizerArguments, raw, training_args, resuming: bool,
                    cache: DataCache | None = None, texts=None, **trainer_settings):
    """The checkpoint's (or `tokenizer_name`'s) tokenizer, or a joint one trained on the training split (taken
    from `cache` when it holds one trained on the same pairs with the same settings). `texts`: what to train
    on instead of the training split; `trainer_settings`: more `train_translation_tokenizer` arguments."""
    added = [token.strip() for token in (tok_args.added_special_tokens or "").split(",") if token.strip()]
    settings = dict(vocab_size=tok_args.vocab_size, model_type=tok_args.tokenizer_type,
                    min_frequency=tok_args.tokenizer_min_frequency, added_special_tokens=added, **trainer_settings)

    def train_now(save_dir):
        return train_translation_tokenizer(raw["train"] if texts is None else texts, save_dir=save_dir, **settings)

    def train(save_dir):
        if cache is None:
            return train_now(save_dir)
        cache.files("tokenizer", save_dir, train_now, **settings)
        return load_pretrained_tokenizer(save_dir)

    name = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        tokenizer = tokenizer_for_run(model_args, training_args, resuming, train=train)
        missing = [token for token in added if token not in tokenizer.get_vocab()]
        if missing:
            raise ConfigError(f"added_special_tokens {missing} are not in the tokenizer of {name}; they are added "
                              "only to a tokenizer trained from scratch (leave tokenizer_name/model_name_or_path unset).")
        return tokenizer
    except (OSError, ValueError) as error:
        if not name or isinstance(error, ConfigError):
            raise
        raise ConfigError(f"The tokenizer of {name} could not be loaded: {error}\nPoint --tokenizer_name (or "
                          "--model_name_or_path) at a complete checkpoint or tokenizer folder (tokenizer.json, "
                          "tokenizer_config.json, config.json, as save_pretrained writes them).") from error


def build_model(model_args: ModelArguments, tokenizer, config=None):
    """A pretrained seq2seq checkpoint (ours or stock), or a new BigModel of the run's `config` (see
    `check_model_settings`; built here when not given) sized to the tokenizer.

    A checkpoint is read from safetensors only, unless `load_legacy_bin` allows a pickled `pytorch_model.bin`.
    """
    if model_args.model_name_or_path:
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(
                model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
                cache_dir=model_args.cache_dir, use_safetensors=None if model_args.load_legacy_bin else True,
                **dropout_settings(model_args),  # config fields of ours and of Marian/BART alike
            )
        except (OSError, ValueError, SafetensorError) as error:
            raise ConfigError(
                f"--model_name_or_path {model_args.model_name_or_path} could not be loaded as a translation "
                f"(sequence-to-sequence) model: {error}\nPoint it at a complete checkpoint folder (config.json and "
                "model.safetensors, as save_pretrained writes them) of an encoder-decoder model, or leave it unset "
                "to train from scratch." + ("" if model_args.load_legacy_bin else
                                            " Weights only in pytorch_model.bin load with --load_legacy_bin.")
            ) from error
        embeddings = model.get_input_embeddings().num_embeddings
        if len(tokenizer) > embeddings:
            raise ConfigError(
                f"The tokenizer ({tokenizer.name_or_path}) has {len(tokenizer)} tokens but the model "
                f"{model_args.model_name_or_path} has {embeddings} embeddings: ids past {embeddings - 1} would crash. "
                "Use the tokenizer the model was trained with (leave --tokenizer_name unset)."
            )
        return model
    config = config if config is not None else check_model_settings(model_args)
    model = BigModelForSeq2SeqLM(sized_to_tokenizer(config, tokenizer, model_args))
    check_tokenizer_matches_model(tokenizer, model.config)
    return model


def run_translation(run_config: RunConfig) -> dict:
    """Train and evaluate; returns the `eval_results.json` content. Writes the output directory layout."""
    started = time.perf_counter()
    model_args, data, run, args = run_config.model, run_config.data, run_config.run, run_config.training
    expected = check_model_settings(model_args)
    pairs = check_multilingual_settings(data, args)  # None: a bilingual run
    if data.streaming:
        check_streaming_settings(data, args, run_config.tokenizer)
    # run_config.yaml once the inputs have loaded; first, may this command continue what output_dir holds?
    layout, resume = start_run(run_config, model_config=expected, data=data)
    if finished := completed_run(resume, args):
        print(finished)
        return layout.read_eval_results()
    share_generated_data(data, "translation", args)
    stages = StageLog()
    cache = None if data.streaming or pairs else DataCache.for_run(data, args.seed)
    with args.main_process_first(desc="loading data"):
        if pairs:
            with stages.stage("load and route language pairs") as record:
                raw = load_multilingual_data(data, pairs, args.seed, args.output_dir if args.should_save else None)
                record["rows_in"] = record["rows_out"] = sum(len(split) for split in raw.values())
        elif data.streaming:  # raw["train"]: only the tokenizer's sample; training reads the stream
            with stages.stage("load evaluation splits and the stream's tokenizer sample") as record:
                raw, stream, eval_hashes = load_streamed_parallel_data(data, args.seed)
                record["rows_in"] = record["rows_out"] = sum(len(split) for split in raw.values())
        else:
            raw = load_parallel_data(data, args.output_dir, args.seed, write_files=args.should_save, stages=stages,
                                     cache=cache)
    with stages.stage("tokenizer", rows_in=len(raw["train"])):
        tok_args, sample, extra = run_config.tokenizer, None, {}
        # M2M100, NLLB, mBART-50 bring their own language tokens (and their own way of using them)
        stock = checkpoint_family(model_args.tokenizer_name or model_args.model_name_or_path, model_args.cache_dir)
        if pairs and not stock:  # a token per target language; a balanced sample, all characters, placeholders
            tokens = [t for t in (tok_args.added_special_tokens or "").split(",") if t.strip()]
            tok_args = replace(tok_args, added_special_tokens=",".join(tokens + language_special_tokens(pairs)))
            sample, extra = multilingual_tokenizer_inputs(raw["train"], args.seed)
        tokenizer = build_tokenizer(model_args, tok_args, raw, args, resuming=resume is not None, cache=cache,
                                    texts=sample, **extra)
    stock = stock_family(tokenizer)
    if stock:
        directions = [(p.source, p.target) for p in pairs] if pairs else [(data.source_lang, data.target_lang)]
        check_stock_settings(tokenizer, directions, data, run_config.tokenizer)
    model = build_model(model_args, tokenizer, expected)
    forced_bos_for = None
    if stock:  # language tokens in the stream; the first generated one forced per direction
        forced_bos_for = forced_bos_hook(tokenizer)
        if not pairs:
            set_bilingual_direction(model, tokenizer, data.source_lang, data.target_lang)
    elif pairs:
        forced_bos_for = language_start_tokens(model, tokenizer, pairs)
    lora = run_config.lora or LoraArguments()  # a program that builds its own RunConfig may leave it out
    if lora.use_peft:
        model = add_lora(model, lora.lora_r, lora.lora_alpha, lora.lora_dropout, lora.lora_target_modules,
                         task_type="SEQ_2_SEQ_LM")
        args.label_names = args.label_names or ["labels"]  # a PeftModel's forward hides them from the Trainer
    # saved with the model, so `Translator` and transformers-only users put it before sources too
    record_source_prefix(model.config, data.source_prefix, data.source_lang, data.target_lang)
    record_run(run_config, data)
    to_tokenize = DatasetDict({split: ds for split, ds in raw.items() if split != "train"}) if data.streaming else raw
    with stages.stage("tokenize", rows_in=sum(len(split) for split in to_tokenize.values()),
                      workers=data.preprocessing_num_workers or 1):
        if pairs and stock:
            tokenized = tokenize_by_direction(to_tokenize, tokenizer, max_source_length=data.max_source_length,
                                              max_target_length=data.max_target_length, keep_languages=True,
                                              num_proc=data.preprocessing_num_workers)
        elif pairs:
            tokenized = tokenize_multilingual(to_tokenize, tokenizer, data, forced_bos_for)
        else:
            tokenized = tokenize_parallel_data(to_tokenize, tokenizer, data, cache)
    push = take_over_trainer_push(args)  # pushed once at the end, with the card, instead of per checkpoint
    streamed = training_stream(stream, tokenizer, data, args, eval_hashes) if data.streaming else None
    run_info: dict = {"data_stages": stages.as_list()}
    if pairs:
        run_info["tokens_per_word"] = report_tokens_per_word(tokenizer, raw)
        sizes = direction_sizes(raw["train"])
        temperature = temperature_of(data, pairs)
        probabilities = sampling_probabilities(sizes, temperature) if data.max_tokens else None
        run_info["language_sampling"] = {"temperature": temperature, "training_pairs": sizes,
                                         "probabilities": probabilities}
        print(f"language pairs: {sizes} training pairs; sampling at T={temperature}: {probabilities}")
        trainer = build_translation_trainer(
            run_config, model, tokenizer, raw, tokenized,
            trainer_class=partial(MultilingualTranslationTrainer, forced_bos_for=forced_bos_for,
                                  probabilities=probabilities),
            eval_dataset=evaluation_subset(tokenized["validation"], data.max_eval_samples, length_sorted_subset),
            generate_samples=per_direction_samples(tokenizer, raw["validation"], forced_bos_for,
                                                   run_config.run.num_sample_outputs))
    else:
        trainer = build_translation_trainer(run_config, model, tokenizer, raw, tokenized, train_dataset=streamed)
    if streamed is not None:
        trainer.add_callback(StreamPositionCallback(streamed))
        if resume:
            restore_position(streamed, resume)
    with short_sequence_bf16_attention(model, args):
        train_output = trainer.train(resume_from_checkpoint=resume)

    results = {"training": {**trainer.training_tokens(), "steps": trainer.state.global_step,
                            "epochs": trainer.state.epoch, **wall_clock_report(trainer)}}
    if streamed is not None and trainer.is_world_process_zero():
        results["streaming"] = write_stream_report(streamed, args.output_dir, len(raw["train"]))
    if run.average_last_checkpoints > 1:
        results["checkpoint_averaging"] = keep_better_of_best_and_average(trainer, run.average_last_checkpoints)
    # The final decoding settings become the model's defaults, saved in generation_config.json.
    generation = model.generation_config
    generation.num_beams, generation.length_penalty = data.num_beams, data.length_penalty
    save_model_or_adapters(trainer, lora)
    if pairs and (mix := trainer.language_mix()) is not None:
        run_info["language_mix"] = mix
        print("language mix drawn (share of pairs / of tokens): " + ", ".join(
            f"{pair} {m['share_examples']:.3f}/{m['share_tokens']:.3f}" for pair, m in mix.items()))
    for split in ("validation", "test"):
        if split in tokenized:
            if pairs:
                results[split] = evaluate_directions(trainer, raw[split], tokenized[split], split, data, layout,
                                                     forced_bos_for)
            else:
                results[split] = evaluate_split(trainer, raw[split], tokenized[split], split, data, layout)

    finish_run(trainer, train_output, results, started, push, run_info=run_info,
               card=not lora.use_peft or lora.merge_lora)  # an adapter alone gets no card
    return results


def tokenize_parallel_data(raw, tokenizer, data, cache: DataCache | None = None):
    """`input_ids`/`attention_mask`/`labels` of every split (from `cache` when it holds them for this tokenizer)."""

    if stock_family(tokenizer):  # each checkpoint family marks the languages its own way
        return tokenize_by_direction(raw, tokenizer, max_source_length=data.max_source_length,
                                     max_target_length=data.max_target_length, num_proc=data.preprocessing_num_workers,
                                     direction=(data.source_lang, data.target_lang))

    def make():
        return tokenize_translation_dataset(raw, tokenizer, max_source_length=data.max_source_length,
                                            max_target_length=data.max_target_length,
                                            num_proc=data.preprocessing_num_workers)

    if cache is None:
        return make()
    return cache.datasets("tokenized", make, tokenizer=tokenizer_fingerprint(tokenizer),
                          max_source_length=data.max_source_length, max_target_length=data.max_target_length)


def set_evaluation_max_length(model, args, data) -> None:
    """Seq2SeqTrainer pads generated ids to the generation config's max_length: keep it to what we decode
    (the start token + `generation_max_length`, or + the longest target trained on)."""
    model.generation_config.max_length = args.generation_max_length or data.max_target_length + 1


def build_translation_trainer(run_config: RunConfig, model, tokenizer, raw, tokenized,
                              trainer_class=TranslationTrainer, train_dataset=None, eval_dataset=None,
                              generate_samples=None) -> TranslationTrainer:
    """The Trainer: greedy validation on a capped length-sorted subset, samples, plot, early stopping.
    `train_dataset`: batches to train on instead of `tokenized["train"]` (a `StreamingBatches`);
    `eval_dataset`: validation rows instead of that subset; `generate_samples`: (model, texts) -> outputs
    for the sample outputs logged at each evaluation, with the texts as `.inputs`/`.references`."""
    data, run, args = run_config.data, run_config.run, run_config.training
    set_evaluation_max_length(model, args, data)

    def plain_samples(model, texts):
        return translate_texts(model, tokenizer, texts, max_new_tokens=max_new_tokens_of(model.generation_config))

    multiple = training_length_multiple(args)  # few matrix shapes under CPU bf16: flat memory
    collator, keep_columns = make_seq2seq_collator(tokenizer, model, pad_to_multiple_of=multiple), ()
    train_dataset = tokenized["train"] if train_dataset is None else train_dataset
    bpe_dropout = run_config.tokenizer.bpe_dropout
    if bpe_dropout:  # training side only: the collator re-encodes the text; evaluation keeps `tokenizer`
        collator = SubwordDropoutCollator(collator, dropout_tokenizer(tokenizer, bpe_dropout),
                                          data.max_source_length, data.max_target_length)
        train_dataset, keep_columns = with_text_columns(train_dataset, raw["train"]), TEXT_COLUMNS
    if eval_dataset is None:
        eval_dataset = length_sorted_subset(tokenized["validation"], data.max_eval_samples)
    inputs, references = raw["validation"]["source"], raw["validation"]["target"]
    if generate_samples is not None:
        inputs, references = generate_samples.inputs, generate_samples.references
    return trainer_class(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        data_collator=collator, processing_class=tokenizer, keep_columns=keep_columns,
        compute_metrics=TranslationMetrics(tokenizer, None if run_config.data.language_pairs else data.target_lang),
        max_tokens=data.max_tokens, length_multiple=multiple,
        callbacks=build_callbacks(run, args, generate_samples or plain_samples, inputs, references),
    )


class per_direction_samples:  # noqa: N801 - used like a function: (model, texts) -> outputs
    """The sample outputs of a multilingual run: one validation row per direction (up to `count`), each
    decoded from its own target-language token."""

    def __init__(self, tokenizer, raw_validation, forced_bos_for, count: int):
        firsts = {}
        for index, (source, target) in enumerate(zip(column(raw_validation, "source_lang"),
                                                     column(raw_validation, "target_lang"))):
            firsts.setdefault((source, target), index)
        rows = [raw_validation[i] for i in list(firsts.values())[:count]]
        self.tokenizer, self.forced_bos_for = tokenizer, forced_bos_for
        self.inputs, self.references = [row["source"] for row in rows], [row["target"] for row in rows]
        self.targets = [row["target_lang"] for row in rows]

    def __call__(self, model, texts):
        return [translate_texts(model, self.tokenizer, [text], max_new_tokens=max_new_tokens_of(model.generation_config),
                                forced_bos_token_id=self.forced_bos_for(target))[0]
                for text, target in zip(texts, self.targets)]


def evaluate_split(trainer, raw_split, tokenized_split, split, data, layout, target_lang=None, direction=None,
                   **generate_kwargs) -> dict:
    """Beam-search decode a split (all processes), score it, write its translations (main process).
    A multilingual run calls it per `direction` ("en-de"), with its `target_lang` and forced first token."""
    raw_split, tokenized_split = capped(raw_split, data.max_predict_samples), capped(tokenized_split, data.max_predict_samples)
    target_lang = target_lang or data.target_lang
    output = trainer.predict(
        tokenized_split, metric_key_prefix=split, num_beams=data.num_beams, length_penalty=data.length_penalty,
        max_length=trainer.model.generation_config.max_length, **generate_kwargs,
    )
    scores = strip_metric_prefix(output.metrics, split)  # the loss
    scored = TranslationMetrics(trainer.processing_class, target_lang).score(output.predictions, output.label_ids)
    copy_baseline = corpus_translation_scores(list(raw_split["source"]), list(raw_split["target"]), target_lang)["bleu"]
    result = {
        "bleu": scored.metrics["bleu"], "chrf": scored.metrics["chrf"],
        "bleu_signature": scored.signatures["bleu"], "chrf_signature": scored.signatures["chrf"],
        "gen_len": scored.metrics["gen_len"], "loss": scores.get("loss"), "num_samples": len(tokenized_split),
        "num_beams": data.num_beams, "length_penalty": data.length_penalty,
        "copy_source_bleu": copy_baseline,
    }
    if trainer.is_world_process_zero():
        layout.write_predictions(split, direction or target_lang, scored.predictions)
        print(f"\n{split}{' ' + direction if direction else ''}: BLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f} "
              f"(copying the source: BLEU {copy_baseline:.2f}) on {len(tokenized_split)} pairs, beam {data.num_beams}")
        for source, hypothesis, reference in list(zip(raw_split["source"], scored.predictions, raw_split["target"]))[:5]:
            print(f"  > {source}\n  = {hypothesis}\n  ~ {reference}")
    return result


def evaluate_directions(trainer, raw_split, tokenized_split, split, data, layout, forced_bos_for) -> dict:
    """`evaluate_split` for each direction of a multilingual split, and the means: {"bleu", "chrf", "loss",
    "gen_len": means over directions, "directions": {"en-de": its result}}."""
    raw_parts, tokenized_parts = split_by_direction(raw_split), split_by_direction(tokenized_split)
    per = {}
    for direction, rows in raw_parts.items():
        target = rows[0]["target_lang"]
        per[direction] = evaluate_split(trainer, rows, tokenized_parts[direction], split, data, layout, target,
                                        direction, forced_bos_token_id=forced_bos_for(target))
    flat = {f"{split}_{d}_{name}": value for d, result in per.items() for name, value in result.items()}
    means = strip_metric_prefix(average_over_directions(flat, split, list(per)), split)
    if trainer.is_world_process_zero():
        print(f"\n{split}: mean over {len(per)} directions: BLEU {means.get('bleu', 0):.2f}, chrF {means.get('chrf', 0):.2f}")
    return {**means, "num_samples": sum(r["num_samples"] for r in per.values()), "directions": per}


def keep_better_of_best_and_average(trainer, n: int) -> dict:
    """Average the last `n` checkpoints; keep the average if its validation BLEU is at least the best's.

    A run stopped early (wall clock, early stopping) may have saved fewer: those are averaged (2 or more).
    """
    available = len(list_checkpoints(trainer.args.output_dir))
    if available < 2:
        return {"checkpoints": [], "kept": "best", "note": f"{available} checkpoint(s) saved, nothing to average"}
    weights, used = average_last_checkpoints(trainer.args.output_dir, min(n, available))
    model = trainer.model
    current = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    before = trainer.evaluate()["eval_bleu"]
    load_weights(model, weights)
    after = trainer.evaluate(metric_key_prefix="eval_averaged")["eval_averaged_bleu"]
    if after < before:
        model.load_state_dict(current)
    return {"checkpoints": [p.name for p in used], "bleu_before": before, "bleu_averaged": after,
            "kept": "averaged" if after >= before else "best"}
