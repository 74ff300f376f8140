"""The `bigmodel-hf` command. Each subcommand lives with the code it runs; this file only dispatches.

    bigmodel-hf convert-llama LLAMA_DIR OUTPUT_DIR     # Llama-family checkpoint -> BigModelForCausalLM
    bigmodel-hf export ct2 MODEL_DIR OUT_DIR           # encoder-decoder -> CTranslate2 (int8 by default)
    bigmodel-hf export llama MODEL_DIR OUT_DIR         # modern decoder-only -> LlamaForCausalLM checkpoint
    bigmodel-hf card OUTPUT_DIR                        # (re)build OUTPUT_DIR/README.md, the model card
    bigmodel-hf push OUTPUT_DIR --hub_model_id ID      # push a run's model, tokenizer and card to the Hub
    bigmodel-hf translate --model DIR "text" ...       # translate arguments (or stdin lines), one per line
    bigmodel-hf translate --interactive --model DIR    # accept / correct / approve each proposal in the terminal
    bigmodel-hf serve --model DIR                      # the same on a local web page
    bigmodel-hf serve --model DIR --adapt              # ...and the model learns from each approval
    bigmodel-hf adapt --model DIR --corrections FILE --output_dir OUT   # replay approvals offline
"""

import argparse
import sys

from .export import MissingExtra


def _convert_llama(args: argparse.Namespace) -> None:
    import torch

    from .convert import convert_llama_checkpoint

    out = convert_llama_checkpoint(args.source, args.output_dir, getattr(torch, args.dtype),
                                   trust_remote_code=args.trust_remote_code, load_legacy_bin=args.load_legacy_bin)
    print(f"Converted {args.source} -> {out}")


def _export(args: argparse.Namespace) -> None:
    if args.format == "ct2":
        from .export.ct2 import export_ct2

        out = export_ct2(args.model_dir, args.output_dir, quantization=args.quantization, force=args.force)
    else:
        from .export.llama import export_llama

        out = export_llama(args.model_dir, args.output_dir, force=args.force)
    print(f"Exported {args.model_dir} -> {out} ({args.format})")


def _card(args: argparse.Namespace) -> None:
    from .cards import write_model_card

    path = write_model_card(args.output_dir, repo_id=args.hub_model_id, license=args.license,
                            base_model=args.base_model, language=args.language)
    print(f"Wrote {path}")


def _push(args: argparse.Namespace) -> None:
    from .hub import plan_upload, push_output_dir

    options = dict(include_logs=args.include_logs, include_checkpoints=args.include_checkpoints,
                   include_optimizer_states=args.include_optimizer_states)
    if args.dry_run:
        return _push_dry_run(args, options)
    url = push_output_dir(args.output_dir, args.hub_model_id, private=args.private or None, revision=args.revision,
                          rebuild_card=not args.keep_card, license=args.license, base_model=args.base_model,
                          language=args.language, **options)
    print(f"Pushed {args.output_dir} to {url}")


def _push_dry_run(args: argparse.Namespace, options: dict) -> None:
    """List what the push would send, with the card it would rebuild (built in memory, nothing written),
    and run the same refusal checks as the push; a file the push would refuse is marked and fails the run."""
    from .hub import plan_upload, upload_problems, with_rebuilt_card

    files = plan_upload(args.output_dir, **options)
    if not args.keep_card or not any(file.path_in_repo == "README.md" for file in files):
        files = with_rebuilt_card(files, args.output_dir, repo_id=args.hub_model_id, license=args.license,
                                  base_model=args.base_model, language=args.language)
    problems = upload_problems(files, args.output_dir)
    for file in files:
        rebuilt = " (the model card, rebuilt when pushing)" if isinstance(file.source, bytes) and \
            file.path_in_repo == "README.md" else ""
        print(file.path_in_repo + rebuilt
              + "".join(f"  REFUSED: {problem}" for problem in problems.get(file.path_in_repo, [])))
    if problems:
        raise ValueError(f"the push would be refused: {len(problems)} of {len(files)} files would publish private "
                         "data (marked REFUSED above); remove it from those files (or leave them out) and retry.")


def _decoding_options(args: argparse.Namespace) -> dict:
    """The decoding flags, with --batch_size and --device, checked before any model loads (one line naming
    the bad one); returns those the translator and the engine take."""
    from .translator import check_decoding_options, parse_device

    options = dict(num_beams=args.num_beams, length_penalty=args.length_penalty, max_new_tokens=args.max_new_tokens)
    check_decoding_options(**options, batch_size=getattr(args, "batch_size", None))
    parse_device(args.device)
    return options


def _translate(args: argparse.Namespace) -> None:
    if args.interactive:
        return _translate_interactively(args)
    from .directions import ModelLanguages
    from .translator import Translator

    options = _decoding_options(args)
    # the direction is checked on the folder's config before any weights load (the translator checks it again)
    ModelLanguages.of_folder(args.model).route(args.source_lang, args.target_lang, args.pivot)
    texts = args.texts or [line.rstrip("\r\n") for line in sys.stdin]
    translator = Translator.from_pretrained(args.model, device=args.device, trust_remote_code=args.trust_remote_code,
                                            load_legacy_bin=args.load_legacy_bin, engine=args.engine,
                                            source_lang=args.source_lang, target_lang=args.target_lang, pivot=args.pivot)
    for line in translator(texts, batch_size=args.batch_size, **options):
        print(line)


def _interactive_setup(args: argparse.Namespace):
    """Engine, corrections log, queued sources and online adapter (None without --adapt) shared by
    `translate --interactive` and `serve`."""
    import math

    from .interactive import CompletionEngine
    from .interactive.session import CorrectionLog, clean_source, read_sources
    from .translator import parse_device, resolve_engine

    # everything that can be wrong with the inputs is found before the model loads, one line each
    decoding = _decoding_options(args)
    if not (math.isfinite(args.threshold) and 0 <= args.threshold <= 1):
        raise ValueError(f"--threshold must be a probability between 0 and 1, not {args.threshold}")
    if args.alternatives < 1:
        raise ValueError(f"--alternatives must be at least 1, not {args.alternatives}")
    direction = _interactive_direction(args)
    source_lang, target_lang = direction["source_lang"], direction["target_lang"]
    log = CorrectionLog(args.corrections, source_lang, target_lang)
    sources = [clean_source(text, f"argument {number}") for number, text in enumerate(args.texts or [], 1)]
    if not all(sources):
        raise ValueError(f"argument {sources.index('') + 1} is blank; give a sentence to translate")
    sources += read_sources(args.source_file, source_lang) if args.source_file else []
    settings = _adapt_settings(args).check() if args.adapt else None
    if settings is not None:
        from .interactive.adaptation import check_output_dir, default_output_dir, read_corrections

        check_output_dir(args.adapt_output_dir or default_output_dir(log.path), args.model)
        read_corrections(log.path, source_lang, target_lang)
    engine_name = resolve_engine(args.engine, args.model)
    if settings is not None and engine_name == "ct2":  # learning needs the PyTorch weights
        if args.engine == "ct2":
            raise ValueError("--adapt trains the PyTorch model and cannot run on --engine ct2; use --engine torch")
        engine_name = "torch"
    if engine_name == "ct2":
        from .interactive.ct2_engine import CT2CompletionEngine

        engine = CT2CompletionEngine.from_pretrained(args.model, trust_remote_code=False,  # no code runs
                                                     num_alternatives=args.alternatives, **decoding, **direction)
    else:
        engine = CompletionEngine.from_pretrained(args.model, device=parse_device(args.device),
                                                  trust_remote_code=args.trust_remote_code,
                                                  num_alternatives=args.alternatives, **decoding, **direction)
    route = engine.route()
    if route.kind in ("zero-shot", "pivot"):  # said once at start-up, as the translator logs it
        print(route.describe(), file=sys.stderr, flush=True)
    adapter = None
    if settings is not None:
        from .interactive.adaptation import OnlineAdapter

        adapter = OnlineAdapter(engine.model, engine.tokenizer, args.model, log.path, settings,
                                args.adapt_output_dir, install=engine.replace_weights, source_lang=source_lang,
                                target_lang=target_lang, source_prefix=engine.source_prefix)
    return engine, log, sources, adapter


def _interactive_direction(args: argparse.Namespace) -> dict:
    """Source and target language of the corrections log and the engine's direction (with the pivot), checked
    against the model folder before it loads: the flags, else what the model records."""
    from .directions import ModelLanguages
    from .interactive.session import model_languages

    languages = ModelLanguages.of_folder(args.model)
    if not languages.multilingual:
        languages.route(args.source_lang, args.target_lang, args.pivot)  # a bilingual model's own languages only
        source_lang, target_lang = model_languages(args.model, args.source_lang, args.target_lang)
        return dict(source_lang=source_lang, target_lang=target_lang, pivot=None)
    if args.adapt:
        raise ValueError(f"--adapt learns one direction of a bilingual model; {args.model} is multilingual "
                         "(lang_to_id in its config); drop --adapt")
    route = languages.route(args.source_lang, args.target_lang, args.pivot)
    source_lang = args.source_lang or languages.default_source(route.target_lang)
    if source_lang is None:
        raise ValueError(f"give --source_lang: the corrections name the language of the sources, and this model "
                         f"translates into {route.target_lang} from {', '.join(sorted(languages.known))}")
    return dict(source_lang=source_lang, target_lang=route.target_lang, pivot=args.pivot)


def _adapt_settings(args: argparse.Namespace):
    from .interactive.adaptation import AdaptSettings

    return AdaptSettings(learning_rate=args.adapt_learning_rate, steps_per_approval=args.adapt_steps_per_approval,
                         replay_approved=args.adapt_replay_approved, replay_original=args.adapt_replay_original,
                         moves=args.adapt_moves, lora_rank=args.adapt_lora_rank, save_every=args.adapt_save_every,
                         seed=args.adapt_seed)


def _close_adapter(adapter) -> None:
    if adapter is not None:
        adapter.close()
        print(f"Adapted weights ({adapter.learned} approved pairs learned) are in {adapter.output_dir}", flush=True)


def _adapt(args: argparse.Namespace) -> None:
    from .interactive.adaptation import replay_corrections

    adapter = replay_corrections(args.model, args.corrections, args.output_dir, _adapt_settings(args).check(),
                                 args.source_lang, args.target_lang)
    print(f"Adapted {args.model} on {adapter.learned} approved pairs of {args.corrections} -> {adapter.output_dir}")


def _translate_interactively(args: argparse.Namespace) -> None:
    from .interactive.terminal import run_terminal

    engine, log, sources, adapter = _interactive_setup(args)
    try:
        run_terminal(engine, log, sources or None, threshold=args.threshold, adapter=adapter)
    finally:
        _close_adapter(adapter)


def _serve(args: argparse.Namespace) -> None:
    from .interactive.web import InteractiveApp, make_server

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, not {args.port}")
    engine, log, sources, adapter = _interactive_setup(args)
    server = make_server(InteractiveApp(engine, log, sources, threshold=args.threshold, adapter=adapter),
                         args.host, args.port)
    # the token in the URL is what lets the page (and only whoever was given this URL) change anything
    print(f"Serving on {server.url} (open this URL, token included; Ctrl-C stops); approved translations "
          f"go to {log.path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _close_adapter(adapter)


def _add_interactive_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source_file", help="sentences to translate: a text file (one per line) or JSON Lines")
    parser.add_argument("--corrections", default="corrections.jsonl",
                        help="JSON Lines file approved translations are appended to (the recipe's --train_file)")
    parser.add_argument("--source_lang", help="language code of the sources (default: the run's run_config.yaml; a "
                                              "multilingual model: checks the direction against those trained)")
    parser.add_argument("--target_lang", help="language code of the translations (default: run_config.yaml); a "
                                              "multilingual model writes the one named here (config.lang_to_id)")
    parser.add_argument("--pivot", help="a multilingual model: translate a direction it was not trained on through "
                                        "this language (e.g. en); without it such a direction is zero-shot")
    parser.add_argument("--alternatives", type=int, default=3, help="n-best completions shown")
    parser.add_argument("--threshold", type=float, default=0.5, help="words below this probability are marked")
    parser.add_argument("--adapt", action="store_true",
                        help="learn from each approval in the background (the base model folder is never written)")
    parser.add_argument("--adapt_output_dir",
                        help="where adapted weights are saved and resumed from (default: beside --corrections)")
    _add_adapt_settings(parser)


def _add_adapt_settings(parser: argparse.ArgumentParser) -> None:
    from .interactive.adaptation import MOVES, AdaptSettings

    defaults = AdaptSettings()
    parser.add_argument("--adapt_learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--adapt_steps_per_approval", type=int, default=defaults.steps_per_approval)
    parser.add_argument("--adapt_replay_approved", type=int, default=defaults.replay_approved,
                        help="earlier approved pairs mixed into each update")
    parser.add_argument("--adapt_replay_original", type=int, default=defaults.replay_original,
                        help="pairs of the model's training data (run_config.yaml's train_file) mixed in")
    parser.add_argument("--adapt_moves", default=defaults.moves, choices=MOVES, help="which weights learn")
    parser.add_argument("--adapt_lora_rank", type=int, default=defaults.lora_rank)
    parser.add_argument("--adapt_save_every", type=int, default=defaults.save_every,
                        help="approvals between saves (and one at exit)")
    parser.add_argument("--adapt_seed", type=int, default=defaults.seed)


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    """How the model decodes, and where: each default is the model's own (`decoding.decoding_settings`)."""
    parser.add_argument("--num_beams", type=int, help="beam size (default: the model's generation_config)")
    parser.add_argument("--length_penalty", type=float, help="beam length penalty (default: generation_config)")
    parser.add_argument("--max_new_tokens", type=int, help="longest output in tokens (default: generation_config)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: where Accelerate runs: the GPU, else CPU)")
    parser.add_argument("--engine", default="auto", choices=["auto", "torch", "ct2"],
                        help="ct2: the model's CTranslate2 export (bigmodel-hf export ct2); auto: ct2 when the "
                             "folder is or holds one (in ct2/), else torch's generate()")


def _add_model_loading_options(parser: argparse.ArgumentParser, legacy_bin: bool = True) -> None:
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="run Python code shipped with the model (default: refuse; never asked on stdin)")
    if legacy_bin:
        parser.add_argument("--load_legacy_bin", action="store_true",
                            help="accept pickled pytorch_model.bin weights (default: safetensors only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bigmodel-hf", description="BigModel tools for the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert-llama", help="convert a Llama-family checkpoint into BigModelForCausalLM")
    convert.add_argument("source", help="Llama-family checkpoint folder or Hub id")
    convert.add_argument("output_dir")
    convert.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    _add_model_loading_options(convert)
    convert.set_defaults(run=_convert_llama)

    export = commands.add_parser("export", help="write a trained model for another inference stack")
    export.add_argument("format", choices=["ct2", "llama"],
                        help="ct2: an encoder-decoder as a CTranslate2 model; llama: a modern decoder-only model "
                             "as a LlamaForCausalLM checkpoint")
    export.add_argument("model_dir")
    export.add_argument("output_dir")
    export.add_argument("--quantization", default="int8", choices=["int8", "int8_float32", "bfloat16", "float32"],
                        help="ct2 only: weight type of the export (default int8)")
    export.add_argument("--force", action="store_true", help="replace a non-empty output_dir")
    export.set_defaults(run=_export)

    card_options = argparse.ArgumentParser(add_help=False)
    card_options.add_argument("--license", default="apache-2.0", help="license id for the card metadata")
    card_options.add_argument("--base_model", help="Hub id of the fine-tuned model (default: from run_config.yaml)")
    card_options.add_argument("--language", nargs="+", help="language codes (default: a translation run's languages)")

    card = commands.add_parser("card", parents=[card_options],
                               help="(re)build the model card README.md of a run's output directory")
    card.add_argument("output_dir")
    card.add_argument("--hub_model_id", help="the Hub repo the card is for (used in the usage snippet)")
    card.set_defaults(run=_card)

    push = commands.add_parser("push", parents=[card_options],
                               help="push a run's model, tokenizer and card to the Hugging Face Hub "
                                    "(token: HF_TOKEN or `hf auth login`)")
    push.add_argument("output_dir")
    push.add_argument("--hub_model_id", required=True, help="user/name of the model repo (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision", help="branch to push to (created if missing)")
    push.add_argument("--include_logs", action="store_true", help="also push the TensorBoard logs (runs/)")
    push.add_argument("--include_checkpoints", action="store_true", help="also push checkpoint-* (model files only)")
    push.add_argument("--include_optimizer_states", action="store_true",
                      help="also push checkpoint-* with optimizer, scheduler and RNG states (to resume elsewhere)")
    push.add_argument("--keep_card", action="store_true", help="push the README.md there instead of rebuilding it")
    push.add_argument("--dry_run", action="store_true", help="list the files that would be pushed; contact nothing")
    push.set_defaults(run=_push)

    translate = commands.add_parser("translate", help="translate text with a trained seq2seq model folder or Hub id")
    translate.add_argument("texts", nargs="*", help="sentences to translate (default: one per line from stdin)")
    translate.add_argument("--model", required=True, help="output directory of recipes/translate.py, or a Hub id")
    _add_decoding_options(translate)
    translate.add_argument("--batch_size", type=int, default=32)
    _add_model_loading_options(translate)
    translate.add_argument("--interactive", action="store_true",
                           help="human in the loop: accept words, type corrections, approve (see /help inside); "
                                "sentences from the arguments, --source_file, or typed at a prompt")
    _add_interactive_options(translate)
    translate.set_defaults(run=_translate)

    serve = commands.add_parser("serve", help="interactive translation on a local web page")
    serve.add_argument("texts", nargs="*", help="sentences to queue (also --source_file)")
    serve.add_argument("--model", required=True, help="output directory of recipes/translate.py, or a Hub id")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (anyone reaching it can add corrections)")
    serve.add_argument("--port", type=int, default=8000)
    _add_decoding_options(serve)
    _add_model_loading_options(serve, legacy_bin=False)  # the engine reads safetensors only
    _add_interactive_options(serve)
    serve.set_defaults(run=_serve)

    adapt = commands.add_parser("adapt", help="replay a corrections file: the weights `serve --adapt` learned, "
                                              "reproduced offline")
    adapt.add_argument("--model", required=True, help="the base model folder the server adapted")
    adapt.add_argument("--corrections", required=True, help="the JSON Lines file of approved translations")
    adapt.add_argument("--output_dir", required=True, help="folder for the adapted model (resumed if it holds one)")
    adapt.add_argument("--source_lang", help="language code of the sources (default: the run's run_config.yaml)")
    adapt.add_argument("--target_lang", help="language code of the translations (default: run_config.yaml)")
    _add_adapt_settings(adapt)
    adapt.set_defaults(run=_adapt)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, MissingExtra) as error:
        sys.exit(f"bigmodel-hf {args.command}: {error}")


if __name__ == "__main__":
    main()
