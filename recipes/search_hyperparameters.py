"""Hyperparameter search for the translation recipe (Trainer.hyperparameter_search, Optuna backend).

    pip install -e ".[search]"
    python recipes/search_hyperparameters.py --config recipes/configs/bible_en_es_small.yaml \
        --output_dir outputs/search --search_trials 8 --search_minutes 60 --max_train_minutes 6

Every translate.py flag works; `--search_*` flags set the space. Writes trials.csv, trials.md, trials.png
and best_trial.json to --output_dir. See bigmodel_hf/training/hyperparameter_search.py.
"""

from bigmodel_hf.training.entry import recipe_main
from bigmodel_hf.training.hyperparameter_search import parse_search_config, run_search


def main(argv=None) -> None:
    recipe_main("search_hyperparameters.py", parse_search_config, run_search, None, argv)


if __name__ == "__main__":
    main()
