"""Train or fine-tune a text-generation (causal) language model.

    python recipes/generate_text.py                                # the embedded default run (stdlib docstrings)
    python recipes/generate_text.py --model_name_or_path DIR --train_file data.jsonl --use_peft
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/generate_text.py [...]

Settings: recipe defaults < YAML file < flags; `--help` lists every flag. See recipes/README.md.
"""

from pathlib import Path

from bigmodel_hf.training.entry import recipe_main
from bigmodel_hf.training.text_generation import parse_text_generation_config, run_text_generation

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "generate_text_stdlib.yaml"


def main(argv=None) -> None:
    recipe_main("generate_text.py", parse_text_generation_config, run_text_generation, DEFAULT_CONFIG, argv)


if __name__ == "__main__":
    main()
