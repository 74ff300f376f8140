"""Back-translation as one command: reverse model, synthetic sources, tagged mix, forward model.

    python recipes/back_translate.py --config recipes/configs/back_translate_bible_low_resource.yaml
    python recipes/back_translate.py --train_file pairs.jsonl --validation_file val.jsonl \
        --monolingual_file news.es.txt --synthetic_ratio 1 --output_dir outputs/bt [any translate.py flag]

Rerunning the same command continues where it stopped. See bigmodel_hf/training/back_translation.py.
"""

from bigmodel_hf.training.back_translation import parse_back_translation_config, run_back_translation
from bigmodel_hf.training.entry import recipe_main


def main(argv=None) -> None:
    recipe_main("back_translate.py", parse_back_translation_config, run_back_translation, None, argv)


if __name__ == "__main__":
    main()
