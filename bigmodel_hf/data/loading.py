"""Load translation pairs and LM text from local files or the Hugging Face Hub into a `DatasetDict`.

Translation data ends up with two string columns, `source` and `target`; LM data with one, `text`.
Splits are `train` plus `validation` / `test` when given (`valid`, `dev`, `val` are read as
`validation`), or carved from train with a fixed seed. Bad input raises `DataError` naming the file,
line or column and what to do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from .errors import DataError, check_utf8, jsonl_line_of_row

logger = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation",
                 "val": "validation", "test": "test"}
TRANSLATION_FORMATS = {".jsonl": "json", ".json": "json", ".tsv": "tsv", ".csv": "csv", ".parquet": "parquet"}
LM_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text", ".text": "text"}


class MissingDataFileError(DataError, FileNotFoundError):
    """A data file or directory named by the user does not exist."""


# --------------------------------------------------------------------------------------------------
# Public API


def load_translation_dataset(
    path_or_name: str | os.PathLike | Sequence | Mapping,
    *,
    src_lang: str = "en",
    tgt_lang: str = "es",
    config_name: str | None = None,
    source_field: str | None = None,
    target_field: str | None = None,
    data_format: str | None = None,
    validation_size: float | int | None = 0.02,
    test_size: float | int | None = None,
    seed: int = 0,
    **hub_kwargs,
) -> DatasetDict:
    """Load sentence pairs as a `DatasetDict` with string columns `source` and `target`.

    `path_or_name` may be
      - a file (`.jsonl`/`.json`, `.tsv`, `.csv`, `.parquet`): the train split;
      - a directory holding `train.<ext>` and optionally `validation|valid|dev.<ext>`, `test.<ext>`, or
        aligned plain-text pairs `train.<src_lang>` / `train.<tgt_lang>` (and so on);
      - a prefix `corpus/train` of aligned files `corpus/train.en` + `corpus/train.es`, or a 2-tuple of files;
      - a dict `{split: any of the above}`;
      - otherwise a Hub dataset name, loaded with `datasets.load_dataset(name, config_name, **hub_kwargs)`.
    Records may use the Hub layout `{"translation": {src_lang: ..., tgt_lang: ...}}`, columns named
    `src_lang`/`tgt_lang`, `source`/`target`, or `source_field`/`target_field`. TSV/CSV have two columns
    (a header row naming them is recognised and skipped). Missing `validation`/`test` splits are carved
    from train when `validation_size`/`test_size` is set (fraction or row count) with `seed`.
    """
    files = _resolve_local(path_or_name, (f".{src_lang}", f".{tgt_lang}"), TRANSLATION_FORMATS, pairs=True)
    if files is None:
        hub = _load_hub(str(path_or_name), config_name, hub_kwargs)
        dd = DatasetDict({
            split: _pair_columns(ds, f"{path_or_name} [{split}]", src_lang, tgt_lang, source_field, target_field)
            for split, ds in hub.items()
        })
    else:
        dd = DatasetDict({
            split: _read_translation(spec, data_format, src_lang, tgt_lang, source_field, target_field)
            for split, spec in files.items()
        })
    return _finish_splits(dd, validation_size, test_size, seed, str(path_or_name))


def load_lm_dataset(
    path_or_name: str | os.PathLike | Mapping,
    *,
    text_field: str = "text",
    config_name: str | None = None,
    data_format: str | None = None,
    sample_by: str = "paragraph",
    validation_size: float | int | None = 0.02,
    test_size: float | int | None = None,
    seed: int = 0,
    **hub_kwargs,
) -> DatasetDict:
    """Load documents for language modelling as a `DatasetDict` with one string column, `text`.

    `path_or_name`: a file (`.txt`, `.jsonl`/`.json`, `.parquet`), a directory of `train.<ext>` etc.,
    a dict `{split: file}`, or a Hub dataset name. JSON/Parquet take the text from `text_field`; plain
    text is cut into documents by `sample_by` (`"line"`, `"paragraph"` = blank-line separated, or
    `"document"` = whole file). Splits are completed as in `load_translation_dataset`.
    """
    files = _resolve_local(path_or_name, (), LM_FORMATS, pairs=False)
    if files is None:
        hub = _load_hub(str(path_or_name), config_name, hub_kwargs)
        dd = DatasetDict({split: _text_column(ds, f"{path_or_name} [{split}]", text_field)
                          for split, ds in hub.items()})
    else:
        dd = DatasetDict({split: _read_lm(Path(spec), data_format, text_field, sample_by)
                          for split, spec in files.items()})
    return _finish_splits(dd, validation_size, test_size, seed, str(path_or_name))


# --------------------------------------------------------------------------------------------------
# Finding the files


def _split_name(name: str) -> str | None:
    return SPLIT_ALIASES.get(name.lower())


def _resolve_local(spec, pair_suffixes, formats, pairs: bool) -> dict | None:
    """Map split -> file (or (src, tgt) file pair); `None` means "not local: try the Hub"."""
    if isinstance(spec, Mapping):
        out = {}
        for split, item in spec.items():
            name = _split_name(str(split))
            if name is None:
                raise DataError(f"unknown split name {split!r}; use one of {sorted(set(SPLIT_ALIASES))}.")
            out[name] = _resolve_one(item, pair_suffixes, pairs, strict=True)
        return out
    if isinstance(spec, (tuple, list)):
        return {"train": _resolve_one(spec, pair_suffixes, pairs, strict=True)}
    path = Path(spec).expanduser()
    if path.is_dir():
        return _scan_directory(path, pair_suffixes, formats, pairs)
    one = _resolve_one(spec, pair_suffixes, pairs, strict=False)
    if one is not None:
        return {"train": one}
    text = str(spec)
    if path.suffix.lower() in formats or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise MissingDataFileError(
            f"{text}: no such file or directory. Give an existing data file, a directory with train.<ext>, "
            f"or a Hub dataset name (`org/name`)."
        )
    return None


def _resolve_one(item, pair_suffixes, pairs: bool, strict: bool):
    if isinstance(item, (tuple, list)):
        if not pairs or len(item) != 2:
            wanted = "one file or a (source, target) pair of files" if pairs else "one file"
            raise DataError(f"{item!r}: expected {wanted}.")
        for part in item:
            if not Path(part).expanduser().is_file():
                raise MissingDataFileError(f"{part}: no such file (part of the aligned pair {tuple(map(str, item))}).")
        return tuple(Path(p).expanduser() for p in item)
    path = Path(item).expanduser()
    if path.is_file():
        return path
    if pairs:
        candidates = [Path(f"{path}{suffix}") for suffix in pair_suffixes]
        found = [c.is_file() for c in candidates]
        if all(found):
            return tuple(candidates)
        if any(found):
            missing = candidates[found.index(False)]
            raise MissingDataFileError(f"{missing}: no such file, but {candidates[found.index(True)]} exists; "
                                       "aligned text needs one file per language.")
    if strict:
        raise MissingDataFileError(f"{path}: no such file.")
    return None


def _scan_directory(directory: Path, pair_suffixes, formats, pairs: bool) -> dict:
    found: dict = {}
    for file in sorted(directory.iterdir()):
        split = _split_name(file.stem)
        if split is None or split in found:
            continue
        if file.suffix.lower() in formats:
            found[split] = file
        elif pairs and file.suffix == pair_suffixes[0]:
            found[split] = _resolve_one(directory / file.stem, pair_suffixes, pairs, strict=True)
    if "train" not in found:
        listing = ", ".join(sorted(p.name for p in directory.iterdir())[:20]) or "(empty)"
        wanted = "train.{" + ",".join(s.lstrip(".") for s in formats) + "}"
        if pairs:
            wanted += f" or train{pair_suffixes[0]} + train{pair_suffixes[1]}"
        raise MissingDataFileError(f"{directory}: no training file found (looked for {wanted}); it holds: {listing}.")
    return found


def _load_hub(name: str, config_name: str | None, hub_kwargs: dict) -> DatasetDict:
    try:
        loaded = datasets.load_dataset(name, config_name, **hub_kwargs)
    except Exception as err:  # noqa: BLE001 - any failure here means "cannot get this dataset"
        raise DataError(
            f"{name!r} is not a local file or directory, and loading it as a Hub dataset "
            f"(config {config_name!r}) failed: {type(err).__name__}: {err}. Check the path, or the dataset "
            "name, config and network access (offline machines need local files)."
        ) from err
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    out = {}
    for split, ds in loaded.items():
        name_ = _split_name(split)
        if name_ is not None:
            out[name_] = ds
        else:
            logger.warning("%s: ignoring split %r (not train/validation/test)", name, split)
    return DatasetDict(out)


# --------------------------------------------------------------------------------------------------
# Reading one split


def _format_of(path: Path, data_format: str | None, formats: dict) -> str:
    if data_format is not None:
        return data_format
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; rename the file or "
                        f"pass data_format= one of {sorted(set(formats.values()))}.")
    return fmt


def _read_translation(spec, data_format, src, tgt, source_field, target_field) -> Dataset:
    if isinstance(spec, tuple):
        return _read_aligned(*spec)
    fmt = _format_of(spec, data_format, TRANSLATION_FORMATS)
    if fmt in ("tsv", "csv"):
        return _read_delimited(spec, "\t" if fmt == "tsv" else ",", src, tgt, source_field, target_field)
    ds = _load_builder(spec, fmt)
    return _pair_columns(ds, str(spec), src, tgt, source_field, target_field, source_path=spec, fmt=fmt)


def _load_builder(path: Path, fmt: str, **kwargs) -> Dataset:
    if fmt not in ("json", "parquet", "text"):
        raise DataError(f"{path}: unknown data_format {fmt!r}.")
    if fmt != "parquet":
        check_utf8(path)
        if not _has_text(path):
            raise DataError(f"{path} is empty (no rows). Give a file with at least one record, or leave that split out.")
    try:
        return datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
    except Exception as err:  # noqa: BLE001
        if fmt == "json":
            _raise_bad_json_line(path)
        raise DataError(f"{path}: could not be read as {fmt}: {type(err).__name__}: {err}") from err


def _has_text(path: Path) -> bool:
    """True unless the file holds nothing but whitespace (read until the first non-blank chunk)."""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            if chunk.strip():
                return True
    return False


def _raise_bad_json_line(path: Path) -> None:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number}, column {err.colno}: not valid JSON ({err.msg}). "
                                "JSON Lines need one complete JSON object per line.") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {number}: a JSON {type(record).__name__}, expected an object "
                                "like {\"translation\": {...}} or {\"text\": ...}.")


def _locate(where: str, source_path: Path | None, fmt: str | None, row: int) -> str:
    if source_path is not None and fmt == "json":
        return f"{where}: line {jsonl_line_of_row(source_path, row)}"
    return f"{where}: row {row}"


def _check_text_column(ds: Dataset, column: str, where: str, source_path=None, fmt=None) -> None:
    feature = ds.features[column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise DataError(f"{where}: column {column!r} holds {feature}, not text. Point the loader at a text field.")
    values = ds.with_format("arrow")[column]
    if values.null_count:
        row = pc.index(pc.is_null(values), True).as_py()
        raise DataError(f"{_locate(where, source_path, fmt, row)}: field {column!r} is missing or null. "
                        "Fix or delete that record.")


def _pair_columns(ds, where, src, tgt, source_field, target_field, source_path=None, fmt=None) -> Dataset:
    cols = ds.column_names
    if source_field or target_field:
        wanted = [source_field or src, target_field or tgt]
    elif "translation" in cols:
        feature = ds.features["translation"]
        langs = list(feature.languages) if isinstance(feature, datasets.Translation) else (
            list(feature) if isinstance(feature, dict) else [])
        missing = [lang for lang in (src, tgt) if lang not in langs]
        if missing:
            raise DataError(f"{where}: column 'translation' has languages {langs}, not {missing}; "
                            "pass src_lang=/tgt_lang= matching the data.")
        ds = ds.select_columns(["translation"]).flatten()
        wanted = [f"translation.{src}", f"translation.{tgt}"]
    else:
        wanted = next(([a, b] for a, b in ((src, tgt), ("source", "target"), ("src", "tgt"))
                       if a in cols and b in cols), None)
        if wanted is None:
            raise DataError(
                f"{where}: cannot find source/target text among columns {cols}. Expected a 'translation' "
                f"column ({{{src!r}: ..., {tgt!r}: ...}}), columns {src!r}/{tgt!r} or 'source'/'target', "
                "or pass source_field=/target_field=."
            )
    missing = [c for c in wanted if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: column(s) {missing} not found; columns are {ds.column_names}.")
    for column in wanted:
        _check_text_column(ds, column, where, source_path, fmt)
    return ds.select_columns(wanted).rename_columns({wanted[0]: "source", wanted[1]: "target"})


def _pairs_to_arrow(rows, files: Sequence[Path], **settings) -> Dataset:
    """`rows(**settings)`' pairs written to an Arrow file batch by batch, as the json and parquet builders do:
    memory stays flat at any size, and the file is memory-mapped. The cache is keyed on the files' paths, inodes,
    sizes and change times (as the json builder's is on times) and on `settings`, so an edited file is read
    again."""
    stamp = [(str(Path(f).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
             for f in files for st in [os.stat(f)]]
    fingerprint = hashlib.sha256(repr((rows.__name__, stamp, sorted(settings.items()))).encode()).hexdigest()[:32]
    features = datasets.Features({"source": datasets.Value("string"), "target": datasets.Value("string")})
    try:
        return Dataset.from_generator(rows, features=features, gen_kwargs=settings, fingerprint=fingerprint)
    except datasets.exceptions.DatasetGenerationError as error:  # the library wraps what the reader raised
        if isinstance(error.__cause__, DataError):
            raise error.__cause__ from None
        raise


def _read_delimited(path: Path, delimiter: str, src, tgt, source_field, target_field) -> Dataset:
    check_utf8(path)
    return _pairs_to_arrow(_delimited_rows, [path], path=str(path), delimiter=delimiter, src=src, tgt=tgt,
                           source_field=source_field, target_field=target_field)


def _delimited_rows(path: str, delimiter: str, src, tgt, source_field, target_field):
    kind = "tab-separated" if delimiter == "\t" else "comma-separated"
    header_names = [{source_field, target_field}] if source_field else [{src, tgt}, {"source", "target"}]
    with open(path, encoding="utf-8-sig", newline="") as handle:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        columns = (0, 1)
        width = 2
        for row in reader:
            if reader.line_num == 1 and {c.strip() for c in row} in header_names:
                names = [c.strip() for c in row]
                columns = (names.index(source_field or (src if src in names else "source")),
                           names.index(target_field or (tgt if tgt in names else "target")))
                width = len(row)
                continue
            if reader.line_num == 1 and source_field:
                raise DataError(f"{path}: line 1: header {row} lacks {source_field!r}/{target_field!r}.")
            if not row:  # a blank line: an empty pair, counted (and dropped) by the cleaner
                yield {"source": "", "target": ""}
                continue
            if len(row) != width:
                hint = "text must not contain tabs" if delimiter == "\t" else "quote fields that contain commas"
                raise DataError(f"{path}: line {reader.line_num}: expected {width} {kind} columns, found "
                                f"{len(row)} ({hint}).")
            yield {"source": row[columns[0]], "target": row[columns[1]]}


def _lines(path: str):
    # newline="\n": only "\n" ends a line (not splitlines()' U+2028 or \x85, which must not break alignment)
    with open(path, encoding="utf-8-sig", newline="\n") as handle:
        for line in handle:
            line = line[:-1] if line.endswith("\n") else line
            yield line[:-1] if line.endswith("\r") else line


def _read_aligned(src_path: Path, tgt_path: Path) -> Dataset:
    check_utf8(src_path)
    check_utf8(tgt_path)
    return _pairs_to_arrow(_aligned_rows, [src_path, tgt_path], src_path=str(src_path), tgt_path=str(tgt_path))


def _aligned_rows(src_path: str, tgt_path: str):
    sources, targets = _lines(src_path), _lines(tgt_path)
    count = 0
    while (source := next(sources, None)) is not None and (target := next(targets, None)) is not None:
        count += 1
        yield {"source": source, "target": target}
    # one file ended: count what is left of either (a source line already read counts)
    rest_src = (source is not None) + sum(1 for _ in sources)
    rest_tgt = sum(1 for _ in targets)
    if rest_src or rest_tgt:
        raise DataError(f"{src_path} has {count + rest_src} lines but {tgt_path} has {count + rest_tgt}; aligned "
                        "files need one sentence per line and the same number of lines.")


def _read_lm(path: Path, data_format, text_field: str, sample_by: str) -> Dataset:
    fmt = _format_of(path, data_format, LM_FORMATS)
    if fmt == "text":
        return _load_builder(path, "text", sample_by=sample_by)
    return _text_column(_load_builder(path, fmt), str(path), text_field, path, fmt)


def _text_column(ds: Dataset, where: str, text_field: str, source_path=None, fmt=None) -> Dataset:
    if text_field not in ds.column_names:
        raise DataError(f"{where}: no column {text_field!r}; columns are {ds.column_names}. Pass text_field=.")
    _check_text_column(ds, text_field, where, source_path, fmt)
    ds = ds.select_columns([text_field])
    return ds.rename_column(text_field, "text") if text_field != "text" else ds


# --------------------------------------------------------------------------------------------------
# Splits


def _carve(dd: DatasetDict, name: str, size, seed: int) -> None:
    train = dd["train"]
    count = size if isinstance(size, int) else int(round(len(train) * size))
    if count == 0 and isinstance(size, float) and size > 0:
        count = 1  # a small file (say, a translator's few corrections) still gets a row to evaluate on
    if count <= 0:
        return
    if count >= len(train):
        raise DataError(f"cannot carve {count} {name} rows from a train split of {len(train)}; give a separate "
                        f"{name} file or lower {name}_size.")
    parts = train.train_test_split(test_size=count, seed=seed, shuffle=True)
    dd["train"], dd[name] = parts["train"], parts["test"]
    logger.info("carved %d %s rows from train (seed %d); %d train rows remain", count, name, seed, len(parts["train"]))


def _finish_splits(dd: DatasetDict, validation_size, test_size, seed: int, where: str) -> DatasetDict:
    if "train" not in dd:
        raise DataError(f"{where}: no train split (found {list(dd)}).")
    if "test" not in dd and test_size:
        _carve(dd, "test", test_size, seed)
    if "validation" not in dd and validation_size:
        _carve(dd, "validation", validation_size, seed)
    for split, ds in dd.items():
        if len(ds) == 0:
            raise DataError(f"{where}: split {split!r} is empty.")
    order = [s for s in ("train", "validation", "test") if s in dd]
    return DatasetDict({s: dd[s] for s in order})


# --------------------------------------------------------------------------------------------------
# Multilingual rows


def load_translation_rows(path: str | os.PathLike) -> tuple[Dataset, list[str]]:
    """A file of `{"translation": {code: text, ...}}` rows (.jsonl/.json/.parquet) with only that column kept,
    and the language codes the column holds. Which pairs the rows serve is `languages.route_translations`'s."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(f"{path}: no such file.")
    fmt = _format_of(path, None, TRANSLATION_FORMATS)
    if fmt not in ("json", "parquet"):
        raise DataError(f"{path}: a multilingual file must be JSON Lines or Parquet with a 'translation' column "
                        "({\"translation\": {\"en\": ..., \"de\": ...}}), not ." + fmt)
    ds = _load_builder(path, fmt)
    feature = ds.features.get("translation")
    if isinstance(feature, datasets.Translation):
        languages = list(feature.languages)
    elif isinstance(feature, dict):
        languages = list(feature)
    else:
        raise DataError(f"{path}: no 'translation' column of {{language: text}} (columns {ds.column_names}); "
                        "write rows as {\"translation\": {\"en\": ..., \"de\": ...}}.")
    return ds.select_columns(["translation"]), languages
