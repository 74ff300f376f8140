"""Language pairs: parsing, which rows serve which pair, temperature sampling."""

import datasets
import pytest

from bigmodel_hf.data.errors import DataError
from bigmodel_hf.languages import (
    LanguagePair,
    check_pairs_have_data,
    language_token,
    parse_language_pairs,
    route_translations,
    sampling_probabilities,
    target_languages,
)


def test_pairs_parse_in_order_with_underscored_codes():
    pairs = parse_language_pairs("en-es, en-pt_BR,zh_CN-en")
    assert pairs == [LanguagePair("en", "es"), LanguagePair("en", "pt_BR"), LanguagePair("zh_CN", "en")]
    assert [str(p) for p in pairs] == ["en-es", "en-pt_BR", "zh_CN-en"]
    assert parse_language_pairs(["en-es,es-en", "en-de"]) == parse_language_pairs("en-es,es-en,en-de")
    assert target_languages(pairs) == ["es", "pt_BR", "en"]
    assert language_token("pt_BR") == "__pt_BR__"


@pytest.mark.parametrize("text, fragment", [
    ("en_es", "not a pair"), ("en--es", "not a pair"), ("en-es,en-es", "listed twice"), ("en-en", "into itself"),
    ("", "not a pair"), ("en-es,", "not a pair"), ("en->es", "not a pair"),
])
def test_bad_pairs_are_one_clear_line(text, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        parse_language_pairs(text)
    assert "\n" not in str(error.value)


def test_one_file_serves_both_directions_and_rows_route_in_order():
    rows = datasets.Dataset.from_list([
        {"translation": {"en": "Open", "de": "Öffnen"}},
        {"translation": {"en": "Close", "de": None}},  # a missing language serves no pair
        {"translation": {"en": "Save", "de": "Speichern"}},
    ])
    pairs = parse_language_pairs("en-de,de-en,en-fr")
    routed = rows.map(route_translations, batched=True, batch_size=2, fn_kwargs={"pairs": pairs},
                      remove_columns=rows.column_names)
    assert list(zip(routed["source"], routed["target"], routed["source_lang"], routed["target_lang"])) == [
        ("Open", "Öffnen", "en", "de"), ("Öffnen", "Open", "de", "en"),
        ("Save", "Speichern", "en", "de"), ("Speichern", "Save", "de", "en"),
    ]


def test_unserved_pair_and_useless_file_are_refused():
    pairs = parse_language_pairs("en-de,de-en")
    assert check_pairs_have_data({"a.jsonl": ["en", "de"]}, pairs) == {"a.jsonl": pairs}
    with pytest.raises(DataError, match="b.jsonl.*serves none"):
        check_pairs_have_data({"a.jsonl": ["en", "de"], "b.jsonl": ["en", "fr"]}, pairs)
    with pytest.raises(DataError, match="no file holds data for en-fr"):
        check_pairs_have_data({"a.jsonl": ["en", "de"]}, parse_language_pairs("en-de,en-fr"))


def test_temperature_flattens_the_mix():
    sizes = {"en-es": 900, "en-pt_BR": 100}
    assert sampling_probabilities(sizes, 1.0) == pytest.approx({"en-es": 0.9, "en-pt_BR": 0.1})
    flat = sampling_probabilities(sizes, 5.0)
    expected_small = 0.1 ** 0.2 / (0.1 ** 0.2 + 0.9 ** 0.2)
    assert flat["en-pt_BR"] == pytest.approx(expected_small) and 0.1 < flat["en-pt_BR"] < 0.5
    assert sum(flat.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        sampling_probabilities(sizes, 0)
