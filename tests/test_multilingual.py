"""One multilingual model in our recipe (--language_pairs): rows routed to pairs, the one-line errors, the
language tokens of the checkpoint, temperature sampling of the batches, per-direction metrics, the shared
tokenizer's placeholders and character coverage, and a tiny run end to end."""

import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.data.errors import DataError
from bigmodel_hf.language_batches import LanguageMixBatchSampler
from bigmodel_hf.languages import language_token, sampling_probabilities
from bigmodel_hf.metrics import bleu_tokenization, corpus_translation_scores
from bigmodel_hf.multilingual_vocabulary import balanced_sample, placeholders_in, texts_by_language
from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.training.multilingual import (
    check_multilingual_settings, direction_sizes, load_multilingual_data, multilingual_tokenizer_inputs,
)
from bigmodel_hf.training.setting_checks import ConfigError
from bigmodel_hf.training.translation import parse_translation_config, run_translation
from tiny_runs import flags
from without_package import BLOCK_BIGMODEL_HF, offline_env

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = "d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2,dropout=0.0"
EN_DE = [("the file %s was not found", "die Datei %s wurde nicht gefunden"), ("open the window", "öffne das Fenster"),
         ("%d files copied", "%d Dateien kopiert"), ("close {0} now", "schließe {0} jetzt")]
EN_JA = [("the file %s was not found", "ファイル %s が見つかりません"), ("open the window", "ウィンドウを開く"),
         ("%d files copied", "%d 個のファイルをコピーしました"), ("close {0} now", "今すぐ {0} を閉じる")]
EN_RU = [("open the window", "откройте окно"), ("%d files copied", "скопировано файлов: %d")]


def write_rows(path: Path, language: str, pairs, repeat: int = 1) -> Path:
    rows = [{"translation": {"en": en, language: other}} for en, other in pairs] * repeat
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("l10n")
    return {"de": write_rows(folder / "en_de.jsonl", "de", EN_DE, 3), "ja": write_rows(folder / "en_ja.jsonl", "ja", EN_JA, 3),
            "ru": write_rows(folder / "en_ru.jsonl", "ru", EN_RU)}


def data_args(train, validation=None, pairs="en-de,de-en,en-ja", **more):
    run_config = parse_translation_config(flags(train_file=train, language_pairs=pairs, output_dir="/nonexistent/x",
                                                **({"validation_file": validation} if validation else {}), **more))
    return run_config.data, run_config.training


def test_each_row_serves_every_listed_pair_it_holds(files):
    data, args = data_args(f"{files['de']},{files['ja']}", f"{files['de']},{files['ja']}", clean_data="false")
    pairs = check_multilingual_settings(data, args)
    raw = load_multilingual_data(data, pairs, seed=0, report_dir=None)
    assert raw["train"].column_names == ["source", "target", "source_lang", "target_lang"]
    # en_de feeds en-de and de-en (its 12 rows each), en_ja only en-ja (ja-en is not listed)
    assert direction_sizes(raw["train"]) == {"en-de": 12, "de-en": 12, "en-ja": 12}
    de_en = raw["validation"].filter(lambda row: row["source_lang"] == "de")
    assert set(de_en["source"]) == {de for _, de in EN_DE} and set(de_en["target"]) == {en for en, _ in EN_DE}


@pytest.mark.parametrize("pairs, which, message", [
    ("en-de,de-en", "ja", "serves none of language_pairs en-de,de-en"),  # a file no pair reads
    ("en-de,en-fr", None, "no file holds data for en-fr"),  # a pair no file feeds
    ("en-de,en_de", None, "is not a pair"),
])
def test_a_file_without_a_pair_or_a_pair_without_data_is_one_error_before_anything_is_written(
        files, tmp_path, pairs, which, message):
    train = f"{files['de']},{files[which]}" if which else str(files["de"])
    output_dir = tmp_path / "never"
    run_config = parse_translation_config(flags(train_file=train, language_pairs=pairs, output_dir=output_dir,
                                                config_overrides=TINY_MODEL, max_steps=1))
    with pytest.raises((DataError, ConfigError), match=message) as raised:
        run_translation(run_config)
    assert "\n" not in str(raised.value) and not output_dir.exists()


def test_the_recipe_cli_reports_the_error_in_one_line_and_exits_1(files, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "translate.py"), "--train_file", f"{files['de']},{files['ja']}",
         "--language_pairs", "en-de", "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, env={**offline_env(tmp_path), "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "en_ja.jsonl: its rows hold ['en', 'ja'], which serves none of language_pairs en-de" in result.stderr
    assert not (tmp_path / "out").exists()


def test_temperature_sampling_draws_pairs_in_the_stated_proportions():
    # a toy mix: 2000 short examples of a large pair, 200 of a small one; one-pair batches of 10 examples
    sizes = {"en-de": 2000, "en-pt_BR": 200}
    groups = ["en-de"] * 2000 + ["en-pt_BR"] * 200
    lengths = np.full((len(groups), 2), 5)
    for temperature, expected_small in ((1.0, 200 / 2200), (5.0, None)):
        probabilities = sampling_probabilities(sizes, temperature)
        if expected_small is None:  # T=5: p ~ share ** 0.2
            expected_small = (1 / 11) ** 0.2 / ((1 / 11) ** 0.2 + (10 / 11) ** 0.2)
        assert probabilities["en-pt_BR"] == pytest.approx(expected_small, rel=1e-9)
        sampler = LanguageMixBatchSampler(lengths, groups, max_tokens=50, probabilities=probabilities, seed=1)
        drawn = Counter()
        for epoch in range(20):  # 20 epochs x 220 batches = 4400 draws: binomial std of a share < 0.008
            sampler.set_epoch(epoch)
            for batch in sampler:
                pairs = {groups[i] for i in batch}
                assert len(pairs) == 1 and len(batch) == 10  # one direction per token-budget batch
                drawn[pairs.pop()] += 1
        share = drawn["en-pt_BR"] / sum(drawn.values())
        assert share == pytest.approx(expected_small, abs=0.03)
        assert sampler.mix()["en-pt_BR"]["share_examples"] == pytest.approx(share, abs=1e-3)
    # at T=5 the small pair is drawn far above its 9% share of the data
    assert expected_small > 0.35


def test_bleu_tokenises_japanese_with_mecab_and_chinese_by_character():
    assert [bleu_tokenization(code) for code in ("ja", "zh_CN", "zh", "de", "pt_BR", None)] == \
        ["ja-mecab", "zh", "zh", "13a", "13a", "13a"]
    hypothesis, reference = ["ファイルが見つかりません"], [["ファイルは見つかりません"]]
    ja = corpus_translation_scores(hypothesis, reference, "ja")
    assert "tok:ja-mecab" in ja["bleu_signature"]
    # unsegmented, the sentence is one "word" under 13a and a near miss scores 0; MeCab's words share 3 of 4
    assert corpus_translation_scores(hypothesis, reference, "de")["bleu"] == 0.0 and ja["bleu"] > 30
    zh = corpus_translation_scores(["文件未找到"], [["文件没有找到"]], "zh_CN")
    assert "tok:zh" in zh["bleu_signature"] and zh["bleu"] > 0


def test_placeholders_are_single_tokens_and_every_character_is_covered():
    train = Dataset.from_dict({
        "source": [en for en, _ in EN_DE + EN_JA] * 3, "target": [t for _, t in EN_DE + EN_JA] * 3,
        "source_lang": ["en"] * 24, "target_lang": (["de"] * 4 + ["ja"] * 4) * 3})
    texts, settings = multilingual_tokenizer_inputs(train, seed=0)
    assert {"%s", "%d", "{0}"} <= set(settings["placeholders"])
    assert set("ファイル見閉じる") <= settings["initial_alphabet"]
    extra = ["%1$s", "%2$d", "{1}", "%-5s"]  # printf/format forms beyond those in the data
    tokenizer = train_translation_tokenizer(texts, vocab_size=300, min_frequency=1,
                                            initial_alphabet=settings["initial_alphabet"] | set("ЖЯ"),
                                            placeholders=settings["placeholders"] + extra)
    # (texts made of the training text's characters: a character no text had is <unk>, dropped by decode)
    for text, placeholder in [("die Datei %s kopiert", "%s"), ("%1$s die %2$d", "%1$s"), ("%1$s die %2$d", "%2$d"),
                              ("ファイル%sが", "%s"), ("Datei {1} jetzt", "{1}"), ("Fenster %-5s open", "%-5s")]:
        pieces = tokenizer.tokenize(text)
        assert placeholder in pieces or "▁" + placeholder in pieces, (text, pieces)
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    # characters of the training text that the sample missed (and Cyrillic passed in) never become <unk>
    assert tokenizer.unk_token_id not in tokenizer("ЖЯ ファイル閉じる")["input_ids"]
    assert placeholders_in(["%s %s %d", "{0} {0} %1$s"], min_count=2) == ["%s", "{0}"]


def test_the_tokenizer_sample_gives_each_language_as_many_texts():
    rows = [(f"en {i}", f"de {i}", "en", "de") for i in range(100)] + [(f"en {i}", f"ja {i}", "en", "ja") for i in range(30)]
    by_language = texts_by_language(rows)
    assert {code: len(texts) for code, texts in by_language.items()} == {"en": 100, "de": 100, "ja": 30}
    assert {code: len(texts) for code, texts in balanced_sample(by_language, seed=0).items()} == {"en": 30, "de": 30, "ja": 30}


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("multilingual")
    argv = flags(
        train_file=f"{files['de']},{files['ja']}", validation_file=f"{files['de']},{files['ja']}",
        language_pairs="en-de,de-en,en-ja", output_dir=output_dir, config_overrides=TINY_MODEL, vocab_size=300,
        tokenizer_min_frequency=1, max_steps=150, warmup_steps=10, learning_rate=1e-2, label_smoothing_factor=0.0,
        max_tokens=200, eval_steps=75, save_steps=75, num_beams=1, generation_max_length=24, seed=0,
        clean_data="false", report_to="tensorboard", num_sample_outputs=3)
    results = run_translation(parse_translation_config(argv))
    return output_dir, results


def test_a_tiny_multilingual_run_scores_every_direction_and_reports_its_mix(trained):
    output_dir, results = trained
    validation = results["validation"]
    assert list(validation["directions"]) == ["en-de", "de-en", "en-ja"]
    assert "tok:ja-mecab" in validation["directions"]["en-ja"]["bleu_signature"]
    assert "tok:13a" in validation["directions"]["en-de"]["bleu_signature"]
    bleus = [d["bleu"] for d in validation["directions"].values()]
    assert validation["bleu"] == pytest.approx(sum(bleus) / 3, abs=1e-9)
    saved = json.loads((output_dir / "eval_results.json").read_text())
    assert set(saved["validation"]["directions"]) == {"en-de", "de-en", "en-ja"}
    info = json.loads((output_dir / "run_info.json").read_text())
    mix = info["language_mix"]
    assert set(mix) == {"en-de", "de-en", "en-ja"} and sum(m["batches"] for m in mix.values()) >= 150
    assert sum(m["share_tokens"] for m in mix.values()) == pytest.approx(1, abs=1e-3)
    assert info["language_sampling"]["temperature"] == 5.0
    assert set(info["tokens_per_word"]) == {"en", "de", "ja"} and "tokens_per_char" in info["tokens_per_word"]["ja"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = set()
    for event_file in (output_dir / "runs").rglob("events.out.tfevents*"):
        scalars |= set(EventAccumulator(str(event_file)).Reload().Tags()["scalars"])
    assert {"eval/en-de_bleu", "eval/en-ja_chrf", "eval/bleu"} <= scalars  # TensorBoard: per direction and mean
    history = json.loads((output_dir / "checkpoint-150" / "trainer_state.json").read_text())["log_history"]
    evaluation = [entry for entry in history if "eval_bleu" in entry][-1]
    assert {"eval_en-de_bleu", "eval_de-en_chrf", "eval_en-ja_bleu"} <= set(evaluation)
    for direction in ("en-de", "de-en", "en-ja"):
        lines = (output_dir / "translations" / f"validation.{direction}").read_text("utf-8").splitlines()
        assert len(lines) == validation["directions"][direction]["num_samples"]


def test_the_language_token_chooses_the_output_language(trained):
    """The same English sources, decoded from __de__ and from __ja__ (the tiny model overfits its 12 rows)."""
    output_dir, results = trained
    german = (output_dir / "translations" / "validation.en-de").read_text("utf-8").splitlines()
    japanese = (output_dir / "translations" / "validation.en-ja").read_text("utf-8").splitlines()
    kana = re.compile(r"[\u3040-\u30ff]")
    # a model this small drifts into the other language mid-sentence now and then; the start token still
    # sets the language of most outputs
    in_kana = [sum(bool(kana.search(line)) for line in lines) for lines in (german, japanese)]
    assert in_kana[1] >= len(japanese) // 2 and in_kana[1] > in_kana[0]
    assert sum(g != j for g, j in zip(german, japanese)) >= len(german) // 2
    assert all(line.split()[0] in {"die", "öffne", "schließe", "%d"} for line in german)
    assert results["validation"]["directions"]["en-de"]["bleu"] > 50
    assert results["validation"]["directions"]["de-en"]["bleu"] > 50


def test_the_checkpoint_holds_its_language_tokens_and_transformers_alone_drives_them(trained, tmp_path):
    output_dir, _ = trained
    from transformers import AutoTokenizer, GenerationConfig

    model = BigModelForSeq2SeqLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    ids = {code: tokenizer.convert_tokens_to_ids(language_token(code)) for code in ("de", "en", "ja")}
    assert model.config.lang_to_id == ids and len(set(ids.values())) == 3
    assert model.config.language_pairs == ["en-de", "de-en", "en-ja"]
    assert GenerationConfig.from_pretrained(output_dir).lang_to_id == ids
    assert model.generation_config.forced_bos_token_id is None  # the caller picks the direction
    # the labels the run trained on start with the row's own target-language token
    labels = tokenizer(text_target=["öffne das Fenster"])["input_ids"][0]
    assert labels[-1] == tokenizer.eos_token_id
    # transformers alone, remote code, no bigmodel_hf: the first generated token is the one asked for
    script = BLOCK_BIGMODEL_HF + textwrap.dedent(f"""
        import json, torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        model = AutoModelForSeq2SeqLM.from_pretrained({str(output_dir)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(output_dir)!r})
        batch = tokenizer(["open the window"], return_tensors="pt")
        out = {{}}
        for code in ("de", "ja"):
            ids = model.generate(**batch, max_new_tokens=6, forced_bos_token_id=model.config.lang_to_id[code])
            out[code] = ids[0, :2].tolist()
        print("RESULT " + json.dumps({{"lang_to_id": model.config.lang_to_id, "starts": out}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=offline_env(tmp_path),
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.split("RESULT ")[-1])
    assert seen["lang_to_id"] == ids
    assert seen["starts"] == {code: [model.config.decoder_start_token_id, ids[code]] for code in ("de", "ja")}


def test_a_sampling_temperature_without_token_budget_batches_is_one_error(files):
    data, args = data_args(str(files["de"]), pairs="en-de,de-en", language_sampling_temperature=5, max_tokens=0)
    with pytest.raises(ConfigError, match="give --max_tokens too"):
        check_multilingual_settings(data, args)


def test_labels_start_with_each_rows_target_language_token(files):
    from bigmodel_hf.training.multilingual import language_token_ids, tokenize_multilingual

    data, args = data_args(f"{files['de']},{files['ja']}", clean_data="false", max_target_length=6)
    pairs = check_multilingual_settings(data, args)
    raw = load_multilingual_data(data, pairs, seed=0, report_dir=None)
    tokenizer = train_translation_tokenizer(raw["train"], vocab_size=200, min_frequency=1,
                                            added_special_tokens=[language_token(c) for c in ("de", "en", "ja")])
    ids = language_token_ids(tokenizer, pairs)
    tokenized = tokenize_multilingual(raw, tokenizer, data, ids.__getitem__)
    for row, target_lang in zip(tokenized["train"], raw["train"]["target_lang"][:]):
        labels = row["labels"]
        assert labels[0] == ids[target_lang] and labels[-1] == tokenizer.eos_token_id and len(labels) <= 6
        assert row["input_ids"][0] not in ids.values()  # no source-language token: the encoder reads the plain source


def test_the_card_has_one_model_index_result_per_direction(trained):
    from bigmodel_hf.cards import build_model_card

    output_dir, results = trained
    card = build_model_card(output_dir)
    index = card.data.eval_results
    by_direction = {}
    for result in index:
        by_direction.setdefault(result.dataset_config, {})[result.metric_type] = result.metric_value
    assert set(by_direction) == {"en-de", "de-en", "en-ja"}
    for direction, metrics in by_direction.items():
        assert metrics["bleu"] == round(results["validation"]["directions"][direction]["bleu"], 2)
        assert metrics["chrf"] == round(results["validation"]["directions"][direction]["chrf"], 2)
    assert {r.task_name for r in index} == {"Translation en-de", "Translation de-en", "Translation en-ja"}
    assert set(card.data.language) == {"en", "de", "ja"}


def test_the_benchmark_scores_a_multilingual_model_per_direction_zero_shot_and_off_target(trained, shared_data, tmp_path):
    """benchmarks/multilingual.py's scoring on the tiny model: supervised directions, zero-shot de->ja direct and
    through English, off-target rates, and the results page written from the JSON alone."""
    pytest.importorskip("lingua")
    from argparse import Namespace

    from benchmark_scripts import load_benchmark

    bench = load_benchmark("multilingual")
    joined = bench.validation_pairs("de", "ja", ["de", "ja"])
    de_rows, ja_rows = {}, {}  # English text -> its first translation in each file
    for rows, language in ((de_rows, "de"), (ja_rows, "ja")):
        for row in bench.read_rows(bench.DATA / f"en_{language}" / "validation.jsonl"):
            rows.setdefault(row["en"], row[language])
    shared = set(de_rows) & set(ja_rows)
    assert len(joined) >= len(shared) > 50  # the l10n splits hash the English text: shared messages line up
    assert {(de_rows[en], ja_rows[en]) for en in shared} <= set(joined)
    identifier = bench.OffTarget(["en", "de", "ja"])
    rate = identifier.rate(["Die Datei wurde nicht gefunden", "file not found"],
                           ["Die Datei fehlt leider", "Die Datei wurde nicht gefunden"], "de")
    assert rate == {"off_target": 50.0, "judged_rows": 2}
    # one sentence for every row (a model that ignores its source) is what the off-target rate cannot see
    fixed = bench.scored(["Die Datei", "Die Datei", "Die Datei", "Der Ordner"], [("a", "Die Datei")] * 4, "de", identifier)
    assert fixed["distinct_outputs"] == 50.0 and fixed["off_target"] == 0.0
    args = Namespace(languages=["de", "ja"], max_rows=8, num_beams=1, zero_shot=["de-ja", "ja-de"], zero_shot_rows=6,
                     parts=list(bench.PARTS), cpu=None)
    output_dir, _ = trained
    report = bench.score_multilingual(output_dir, args, identifier)
    assert set(report["directions"]) == {"en-de", "de-en", "en-ja"}
    assert report["directions"]["en-ja"]["rows"] == 8 and "tok:ja-mecab" in report["directions"]["en-ja"]["bleu_signature"]
    assert set(report["zero_shot"]) == {"de-ja"}  # ja-de: the model never read Japanese nor wrote German from it
    for way in ("direct", "pivot"):
        assert report["zero_shot"]["de-ja"][way]["rows"] == 6 and "off_target" in report["zero_shot"]["de-ja"][way]
    # the whole phase: a (tiny, untrained) bilingual en-de model beside the multilingual one, then the page
    work = tmp_path / "work"
    (work / "multilingual").mkdir(parents=True)
    for item in output_dir.iterdir():
        if item.is_file():
            (work / "multilingual" / item.name).symlink_to(item)
    tokenizer = train_translation_tokenizer([en for en, _ in EN_DE] + [de for _, de in EN_DE], vocab_size=120,
                                            min_frequency=1)
    torch.manual_seed(0)
    bilingual = BigModelForSeq2SeqLM(BigModelForSeq2SeqLM.config_class.from_preset(
        "vaswani-small", vocab_size=len(tokenizer), d_model=16, ffn_dim=32, encoder_layers=1, decoder_layers=1,
        num_attention_heads=2))
    bilingual.generation_config.max_length = 8
    bilingual.save_pretrained(work / "bilingual_en_de")
    tokenizer.save_pretrained(work / "bilingual_en_de")
    (work / "bilingual_en_de" / "benchmark_arm.json").write_text(json.dumps(
        {"flags": ["--source_lang", "en", "--preset", "vaswani-small", "--max_tokens", "512", "--max_tokens", "1024"]}))
    report = bench.score_models(Namespace(**vars(args), work_dir=work))
    assert set(report["bilingual"]) == {"en-de"} and report["bilingual"]["en-de"]["rows"] == 8
    assert set(report["multilingual"]["directions"]) == {"en-de", "de-en", "en-ja"}
    bench.write_results(report, tmp_path / "m.json", tmp_path / "m.md")
    text = (tmp_path / "m.md").read_text()
    de = report["bilingual"]["en-de"]
    assert f"| en-de | 8 | {de['bleu']} | {de['chrf']} |" in text and "| de-ja | 6 |" in text and "## Targets" in text
    assert "The bilingual arm: `--preset vaswani-small`, `--max_tokens 1024`" in text  # what (a) was trained with
    assert f"| {de['distinct_outputs']} / " in text
    assert json.loads((tmp_path / "m.json").read_text())["multilingual"]["zero_shot"] == report["multilingual"]["zero_shot"]
    # scored in two parts (one per core) and joined: the same scores as in one run
    halves = [bench.score_models(Namespace(**{**vars(args), "parts": parts}, work_dir=work))
              for parts in (["bilingual", "zero_shot"], ["multilingual"])]
    assert halves[0]["multilingual"]["directions"] == {} and halves[1]["bilingual"] == {}
    merged = bench.merge_reports(halves)

    def scores(part):
        return {key: (value["bleu"], value["chrf"]) for key, value in part.items()}

    assert scores(merged["bilingual"]) == scores(report["bilingual"])
    assert scores(merged["multilingual"]["directions"]) == scores(report["multilingual"]["directions"])
    assert merged["multilingual"]["zero_shot"].keys() == report["multilingual"]["zero_shot"].keys()
    assert merged["parts"] == sorted(bench.PARTS)


def test_the_benchmark_compares_the_shared_tokenizer_with_one_trained_on_all_text(shared_data):
    from argparse import Namespace

    from benchmark_scripts import load_benchmark

    out = load_benchmark("multilingual").compare_tokenizers(Namespace(languages=["pt_BR", "ja"], vocab_size=3000))
    for name in ("balanced", "all_text"):
        assert set(out[name]["per_unit"]) == {"en", "pt_BR", "ja"} and out[name]["placeholders"] > 100
    # the placeholders the data repeats are single tokens only in the shared tokenizer
    assert out["balanced"]["placeholders_in_several_tokens"] < out["all_text"]["placeholders_in_several_tokens"]
