"""Train or fine-tune a translation model.

    python recipes/translate.py                                   # the embedded default run (toy en->es)
    python recipes/translate.py --config recipes/configs/X.yaml --max_steps 2000
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/translate.py [...]

Settings: recipe defaults < YAML file < flags; `--help` lists every flag. See recipes/README.md.
"""

from pathlib import Path

from bigmodel_hf.training.entry import recipe_main
from bigmodel_hf.training.translation import parse_translation_config, run_translation

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "translate_toy_en_es.yaml"


def main(argv=None) -> None:
    recipe_main("translate.py", parse_translation_config, run_translation, DEFAULT_CONFIG, argv)


if __name__ == "__main__":
    main()
