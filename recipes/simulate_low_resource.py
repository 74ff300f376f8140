"""Simulate a low-resource pair from a parallel corpus: keep the pairs of a subset of rows (verses) and only
the target-language side of the rest, for back-translation experiments without extra data.

    python recipes/simulate_low_resource.py ../shared/data/bible_en_es/train.jsonl outputs/bible_low_resource \
        --parallel_fraction 0.25
"""

import argparse
import json

from bigmodel_hf.training.back_translation import simulate_low_resource


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_file")
    parser.add_argument("out_dir")
    parser.add_argument("--parallel_fraction", type=float, default=0.25, help="share of rows kept as pairs")
    parser.add_argument("--source_lang", default="en")
    parser.add_argument("--target_lang", default="es")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(simulate_low_resource(args.train_file, args.out_dir, args.parallel_fraction,
                                           args.source_lang, args.target_lang, args.seed), indent=1))


if __name__ == "__main__":
    main()
