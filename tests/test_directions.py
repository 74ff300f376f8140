"""Choosing the direction of a multilingual model at use time (issue 20): `directions.ModelLanguages`, the
`Translator`'s target_lang / source_lang / pivot, and a plain transformers user's `forced_bos_token_id`."""

import json
import logging
import subprocess
import sys
import textwrap

import pytest
import torch

from bigmodel_hf.directions import ModelLanguages
from bigmodel_hf.languages import language_token, parse_language_pairs
from bigmodel_hf.translator import Translator
from interactive_models import make_model_dir
from multilingual_models import make_multilingual_dir
from without_package import BLOCK_BIGMODEL_HF, offline_env

SOURCES = ["the cat sees a dog", "a small house"]


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory):
    return make_multilingual_dir(tmp_path_factory.mktemp("multilingual"))


@pytest.fixture(scope="module")
def bilingual(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("bilingual"), max_length=12, num_beams=1)


def spy_on_generate(translator) -> list[dict]:
    """Record each generate call's forced_bos_token_id, its input texts and the sequences it returned."""
    calls, generate = [], translator.model.generate

    def recording(*args, **kwargs):
        sequences = generate(*args, **kwargs)
        calls.append({"forced": kwargs.get("forced_bos_token_id"), "sequences": sequences,
                      "inputs": translator.tokenizer.batch_decode(kwargs["input_ids"], skip_special_tokens=True)})
        return sequences

    translator.model.generate = recording
    return calls


def lang_id(folder, code: str) -> int:
    return json.loads((folder / "config.json").read_text())["lang_to_id"][code]


def test_target_lang_is_the_first_generated_token_and_changes_the_output(multilingual):
    translator = Translator.from_pretrained(multilingual, device="cpu", target_lang="de")
    calls = spy_on_generate(translator)
    german = translator(SOURCES)
    spanish = translator(SOURCES, target_lang="es")  # a call may choose its own direction
    assert [call["forced"] for call in calls] == [lang_id(multilingual, "de"), lang_id(multilingual, "es")]
    for call, code in zip(calls, ("de", "es")):
        # sequences: [decoder start, language token, ...]
        assert call["sequences"][:, 1].tolist() == [lang_id(multilingual, code)] * len(SOURCES)
    assert german != spanish
    assert not any(language_token(code) in text for text in german + spanish for code in ("de", "es"))
    assert translator.last_route.kind == "unchecked" and translator.last_route.target_lang == "es"


def test_the_config_s_mapping_is_enough_when_the_generation_config_lost_it(tmp_path):
    """transformers 5.25 reloads a generation config saved with `_from_model_config: true` without its extra
    fields: the translator reads `config.lang_to_id` first, so the direction is still chosen."""
    folder = make_multilingual_dir(tmp_path / "model", keep_generation_mapping=False)
    translator = Translator.from_pretrained(folder, device="cpu", target_lang="de")
    assert getattr(translator.model.generation_config, "lang_to_id", None) is None  # what transformers did
    calls = spy_on_generate(translator)
    translator(SOURCES)
    assert calls[0]["sequences"][:, 1].tolist() == [lang_id(folder, "de")] * len(SOURCES)


def test_a_language_the_model_does_not_write_is_one_line_naming_those_it_does(multilingual):
    with pytest.raises(ValueError) as error:
        Translator.from_pretrained(multilingual, device="cpu", target_lang="ja")
    message = str(error.value)
    assert "\n" not in message and "'ja'" in message and "writes de, en, es, fr" in message
    translator = Translator.from_pretrained(multilingual, device="cpu")  # no target yet: the call must name one
    with pytest.raises(ValueError, match="writes de, en, es, fr; choose one with target_lang"):
        translator(SOURCES)
    with pytest.raises(ValueError, match="source_lang='xx'.*knows de, en, es, fr"):
        translator(SOURCES, source_lang="xx", target_lang="de")


def test_a_bilingual_model_decodes_as_before_and_refuses_another_target(bilingual):
    plain = Translator.from_pretrained(bilingual, device="cpu")
    calls = spy_on_generate(plain)
    expected = plain(SOURCES)
    assert calls[0]["forced"] is None and plain.last_route.kind == "bilingual"
    # naming its own languages changes nothing
    assert Translator.from_pretrained(bilingual, device="cpu", source_lang="en", target_lang="es")(SOURCES) == expected
    with pytest.raises(ValueError, match=r"target_lang='de': this model is bilingual and translates en-es only"):
        Translator.from_pretrained(bilingual, device="cpu", target_lang="de")
    with pytest.raises(ValueError, match="bilingual.*nothing to pivot through"):
        plain(SOURCES, pivot="en")


def test_pivot_translates_through_english_and_says_so(multilingual, caplog):
    translator = Translator.from_pretrained(multilingual, device="cpu", source_lang="es", target_lang="fr", pivot="en")
    calls = spy_on_generate(translator)
    with caplog.at_level(logging.WARNING, logger="bigmodel_hf.translator"):
        out = translator(SOURCES)
    route = translator.last_route
    assert route.kind == "pivot" and route.pivot == "en" and [str(leg) for leg in route.legs] == ["es-en", "en-fr"]
    assert [call["forced"] for call in calls] == [lang_id(multilingual, "en"), lang_id(multilingual, "fr")]
    # the second pass translates the first one's English (compared as the tokenizer re-reads it)
    english = translator.tokenizer.batch_decode(calls[0]["sequences"], skip_special_tokens=True)
    assert sorted(calls[1]["inputs"]) == sorted(t.strip() for t in english if t.strip())
    assert len(out) == len(SOURCES)
    assert "es-en -> en-fr" in caplog.text and "pivot" in caplog.text
    # a trained direction takes no detour even when a pivot is given
    assert translator.route("en", "fr", "en").kind == "trained"


def test_a_zero_shot_direction_translates_directly_and_says_so(multilingual, caplog):
    translator = Translator.from_pretrained(multilingual, device="cpu", source_lang="es", target_lang="fr")
    calls = spy_on_generate(translator)
    with caplog.at_level(logging.WARNING, logger="bigmodel_hf.translator"):
        translator(SOURCES)
    assert translator.last_route.kind == "zero-shot"
    assert [call["forced"] for call in calls] == [lang_id(multilingual, "fr")]
    assert "es-fr" in caplog.text and "zero-shot" in caplog.text


@pytest.mark.parametrize("source, target, pivot, message", [
    ("es", "fr", "de", "cannot pivot es-fr through de: es-de, de-fr were not trained"),
    (None, "fr", "en", "pivot='en' needs source_lang"),
    ("es", "fr", "es", "pivot='es' is an end of es-fr"),
    ("es", "es", None, "source_lang and target_lang are both 'es'"),
])
def test_routes_that_cannot_be_taken_are_one_line(source, target, pivot, message):
    languages = ModelLanguages({"es": 5, "de": 6, "fr": 7, "en": 8},
                               tuple(parse_language_pairs("en-es,es-en,en-de,en-fr,fr-en")))
    with pytest.raises(ValueError, match=message) as error:
        languages.route(source, target, pivot)
    assert "\n" not in str(error.value)


TRANSFORMERS_ONLY = """
import json, sys, torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
folder, remote = sys.argv[1], sys.argv[2] == "remote"
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=remote)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)  # tokenizer.json: no code
ids = model.generation_config.lang_to_id
batch = tokenizer(["the cat sees a dog"], return_tensors="pt")
out = {code: model.generate(**batch, forced_bos_token_id=ids[code], max_new_tokens=4)[0].tolist() for code in ids}
print(json.dumps({"class": type(model).__module__, "lang_to_id": ids, "config": model.config.lang_to_id,
                  "pairs": model.config.language_pairs, "tokens": {c: tokenizer.convert_ids_to_tokens(i)
                  for c, i in ids.items()}, "generated": out}))
"""


@pytest.mark.parametrize("side", ["remote", "package"])
def test_transformers_alone_drives_the_direction_with_forced_bos_token_id(multilingual, tmp_path, side):
    """Save -> from_pretrained keeps lang_to_id in the config and the generation config and language_pairs;
    generate(forced_bos_token_id=generation_config.lang_to_id[code]) writes that token first, both through
    the checkpoint's own code on a machine without this package and through the installed classes."""
    script = (BLOCK_BIGMODEL_HF if side == "remote" else "import bigmodel_hf\n") + textwrap.dedent(TRANSFORMERS_ONLY)
    run = subprocess.run([sys.executable, "-c", script, str(multilingual), side], capture_output=True, text=True,
                         timeout=240, env=offline_env(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    saved = json.loads((multilingual / "config.json").read_text())
    assert found["lang_to_id"] == found["config"] == saved["lang_to_id"] and set(found["lang_to_id"]) == {"es", "de", "fr", "en"}
    assert found["pairs"] == ["en-es", "es-en", "en-de", "de-en", "en-fr", "fr-en"]
    assert found["tokens"] == {code: language_token(code) for code in found["lang_to_id"]}
    assert ("bigmodel_hf" in found["class"]) == (side == "package")
    for code, generated in found["generated"].items():
        assert generated[1] == found["lang_to_id"][code], (code, generated)


def test_the_ct2_export_carries_the_language_tokens_and_decodes_like_generate(tmp_path):
    """A multilingual model exported to CTranslate2 (float32) takes the language token as `target_prefix`:
    the translator and the interactive engine on it give the PyTorch outputs, direction by direction."""
    pytest.importorskip("ctranslate2")
    from bigmodel_hf.export.ct2 import export_ct2
    from bigmodel_hf.interactive import CompletionEngine
    from bigmodel_hf.interactive.ct2_engine import CT2CompletionEngine

    folder = make_multilingual_dir(tmp_path / "model")
    export_ct2(folder, folder / "ct2", quantization="float32")
    assert json.loads((folder / "ct2" / "decoding.json").read_text())["lang_to_id"] == json.loads(
        (folder / "config.json").read_text())["lang_to_id"]
    torch_translator = Translator.from_pretrained(folder, device="cpu", engine="torch", target_lang="de")
    ct2_translator = Translator.from_pretrained(folder, device="cpu", engine="ct2", target_lang="de")
    outputs = {}
    for code in ("de", "es"):
        outputs[code] = ct2_translator(SOURCES, target_lang=code)
        assert outputs[code] == torch_translator(SOURCES, target_lang=code), code
    assert outputs["de"] != outputs["es"]
    with pytest.raises(ValueError, match="target_lang='ja'.*writes de, en, es, fr"):
        ct2_translator(SOURCES, target_lang="ja")
    torch_engine = CompletionEngine.from_pretrained(folder, device="cpu", num_beams=2, target_lang="de")
    ct2_engine = CT2CompletionEngine.from_pretrained(folder, num_beams=2, target_lang="de")
    for code in ("de", "es"):
        for prefix in ("", "the "):
            expected = torch_engine.complete(SOURCES[0], prefix, target_lang=code)
            got = ct2_engine.complete(SOURCES[0], prefix, target_lang=code)
            assert got.text == expected.text and got.token_ids == expected.token_ids, (code, prefix)
    assert sorted(str(legs[0]) for legs, _ in ct2_engine._encoded) == ["?-de", "?-es"]
    pivot = dict(source_lang="es", target_lang="fr", pivot="en")
    torch_pivot = CompletionEngine.from_pretrained(folder, device="cpu", num_beams=2, **pivot)
    ct2_pivot = CT2CompletionEngine.from_pretrained(folder, num_beams=2, **pivot)
    assert ct2_pivot.route().kind == "pivot"
    assert ct2_pivot.complete(SOURCES[0]).text == torch_pivot.complete(SOURCES[0]).text
