"""The `bigmodel-hf` command. Each subcommand lives with the code it runs; this file only dispatches.

    bigmodel-hf convert-llama LLAMA_DIR OUTPUT_DIR     # Llama-family checkpoint -> BigModelForCausalLM
"""

import argparse
import sys


def _convert_llama(args: argparse.Namespace) -> None:
    import torch

    from .convert import convert_llama_checkpoint

    out = convert_llama_checkpoint(args.source, args.output_dir, getattr(torch, args.dtype))
    print(f"Converted {args.source} -> {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bigmodel-hf", description="BigModel tools for the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert-llama", help="convert a Llama-family checkpoint into BigModelForCausalLM")
    convert.add_argument("source", help="Llama-family checkpoint folder or Hub id")
    convert.add_argument("output_dir")
    convert.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    convert.set_defaults(run=_convert_llama)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as error:
        sys.exit(f"bigmodel-hf {args.command}: {error}")


if __name__ == "__main__":
    main()
