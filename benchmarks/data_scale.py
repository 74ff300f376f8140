"""Data at scale (issue 19): time per preparation stage, time to the first optimiser step, peak RSS and
rows/s of `recipes/translate.py` on the shared `bible_en_es` pairs made unique (a counter appended, so
nothing is deduplicated), for map-style (1 and 2 workers, cold and warm cache) and `--streaming`.

    OMP_NUM_THREADS=1 python benchmarks/data_scale.py --sizes 30000 300000 --rounds 1

Each arm is one fresh process running the recipe with a tiny model and `--max_steps 1` (so data work
dominates), timed from its start to the end of its first optimiser step. CPU seconds (`time.process_time`
of the recipe process; worker processes' CPU is not in it, their wall-clock effect is) are reported beside
wall-clock, because the machine is shared. Peak RSS is the recipe process's own `ru_maxrss`.
Results: benchmarks/results/data_scale.md.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "bible_en_es"
RESULTS = ROOT / "benchmarks" / "results" / "data_scale.md"
ARMS = ["map_1_worker", "map_2_workers", "cache_cold", "cache_warm", "streaming", "map_capped"]
CGROUP_V1 = Path("/sys/fs/cgroup/memory")  # where a memory limit can be set (as root) for the `map_capped` arm
TINY = "d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2"

# Runs the recipe in this process; a callback notes the first optimiser step; prints one JSON line at the end.
WRAPPER = r"""
import json, resource, sys, threading, time, runpy
started_wall, started_cpu = time.perf_counter(), time.process_time()
first, anon = {}, [0]
def sample_anonymous_rss():  # ru_maxrss also counts the pages of memory-mapped Arrow files that were read
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                anon[0] = max(anon[0], int(line.split()[1]))
        time.sleep(0.02)
threading.Thread(target=sample_anonymous_rss, daemon=True).start()
from transformers import TrainerCallback
import bigmodel_hf.training.translation as translation
class FirstStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if not first:
            first.update(wall=time.perf_counter() - started_wall, cpu=time.process_time() - started_cpu)
original = translation.build_callbacks
translation.build_callbacks = lambda *a, **k: original(*a, **k) + [FirstStep()]
sys.argv = ["translate.py"] + sys.argv[1:]
runpy.run_path("recipes/translate.py", run_name="__main__")
"""


NOTES = """\
- Each arm is a fresh process: `first step` includes Python start-up, imports, building the tiny model and
  the Trainer (5-9 CPU s on this machine whatever the data size), which bounds how much a warm cache can save
  at small sizes; `all data stages` is the data work alone (load, clean, tokenizer, tokenize, or the cache's
  stage on a hit), wall-clock. One round per arm, on an otherwise idle machine (2 cores).
- **Two measures of memory.** `peak RSS` is the process's `ru_maxrss`: it counts the pages of the
  memory-mapped Arrow files (the loaded, cleaned and tokenised data sets) that the process has read. Those
  pages are the kernel's file cache: it drops them under memory pressure and reads them again when needed.
  `peak anonymous RSS` (sampled every 20 ms) is the process's own memory. The `map_capped` arm checks the
  difference on the real thing: the map-style run inside a memory cgroup (no swap) whose limit is 1.3x the
  30k map-style `ru_maxrss`.
- **What is held per pair** (map-style): the verdict code (1 byte) and pair hash (8) of each row, the set of
  kept hashes (8, sorted numpy segments: `bigmodel_hf/data/hash_set.py`), the kept rows' positions (8), and
  the token-budget sampler's lengths and positions (int32). Text and token ids stay in Arrow. Streaming holds
  one chunk of `--streaming_buffer_size` pairs (100,000) as flat int32 token ids, plus the hash set.
- **Workers.** One worker's tokenisation and tokenizer training already run on both cores, inside the Rust
  tokenizer (CPU s above wall s). Worker processes run it single-threaded (`tokenizers` turns its threads off
  after a fork), so on 2 cores tokenisation can gain about 1.4x at most. Tokenizer training is not split
  across workers. Cleaning (Python) is split, including the copy of the kept rows.
"""


def make_corpus(size: int, folder: Path) -> tuple[Path, Path]:
    """`size` unique pairs: the bible pairs over and over, each round's pairs with ` <round>` appended."""
    base = [json.loads(line)["translation"] for line in (SHARED / "train.jsonl").read_text("utf-8").splitlines() if line]
    train = folder / f"train_{size}.jsonl"
    if not train.is_file():
        partial = train.with_suffix(".partial")  # renamed when complete: an interrupted run leaves no short corpus
        with open(partial, "w", encoding="utf-8") as out:
            for i in range(size):
                pair, round_ = base[i % len(base)], i // len(base)
                out.write(json.dumps({"translation": {"en": f"{pair['en']} {round_}", "es": f"{pair['es']} {round_}"}},
                                     ensure_ascii=False) + "\n")
        partial.rename(train)
    valid = folder / "valid_50.jsonl"
    if not valid.is_file():
        rows = (SHARED / "validation.jsonl").read_text("utf-8").splitlines()[:50]
        valid.write_text("\n".join(rows) + "\n", "utf-8")
    return train, valid


def run_arm(train: Path, valid: Path, work: Path, *, workers: int = 1, cache: Path | None = None,
            streaming: bool = False, memory_limit_mb: float | None = None) -> dict:
    out = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    flags = ["--train_file", str(train), "--validation_file", str(valid), "--output_dir", str(out),
             "--config_overrides", TINY, "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no",
             "--load_best_model_at_end", "false", "--num_beams", "1", "--max_predict_samples", "4",
             "--num_sample_outputs", "0", "--plot", "false", "--report_to", "none",
             "--generation_max_length", "16"]
    if workers > 1:
        flags += ["--preprocessing_num_workers", str(workers)]
    if cache is not None:
        flags += ["--data_cache_dir", str(cache)]
    if streaming:
        flags += ["--streaming", "true"]
    code = WRAPPER + r"""
usage = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT " + json.dumps({"first_step_wall": first.get("wall"), "first_step_cpu": first.get("cpu"),
                              "peak_rss_mb": usage.ru_maxrss / 1024, "peak_anon_mb": anon[0] / 1024}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "HF_DATASETS_CACHE": str(work / "hf_cache"), "TQDM_DISABLE": "1"}
    # a fresh datasets cache per arm: a "cold" arm must not reuse Arrow files of an earlier arm
    shutil.rmtree(work / "hf_cache", ignore_errors=True)
    command = [sys.executable, "-c", code, *flags]
    group = None
    if memory_limit_mb:  # the process joins a memory cgroup first: past the limit the kernel reclaims or kills
        group = CGROUP_V1 / f"bigmodel_data_scale_{os.getpid()}"
        group.mkdir()
        for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):  # memsw: no swapping out of it
            if (group / name).exists():
                (group / name).write_text(str(int(memory_limit_mb * 2**20)))
        command = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *command]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if group is not None:
        limits = {"memory_limit_mb": memory_limit_mb, "completed": proc.returncode == 0 and line is not None,
                  "cgroup_max_usage_mb": int((group / "memory.max_usage_in_bytes").read_text()) / 2**20,
                  "limit_hits": max(int((group / name).read_text()) for name in ("memory.failcnt", "memory.memsw.failcnt")
                                    if (group / name).exists())}
        group.rmdir()
        if not limits["completed"]:
            print(f"capped arm did not complete ({proc.returncode}): {proc.stderr[-1500:]}", flush=True)
            return {"first_step_wall": None, "first_step_cpu": None, "peak_rss_mb": None, "stages": [], **limits}
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"arm failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    if group is not None:
        result.update(limits)
    info = json.loads((out / "run_info.json").read_text("utf-8"))
    result["stages"] = info.get("data_stages", [])
    shutil.rmtree(out, ignore_errors=True)
    return result


def training_runs(sizes: list[int], minutes: float, work: Path) -> dict:
    """One real run per size of the recipe as a user runs it (`bible_en_es_small.yaml`: vaswani-small, joint BPE
    8k, 2,048-token batches) for `minutes` of training CPU time, side by side, size i pinned to core i: does
    the large corpus train as fast as the small one? Data preparation is not in the minutes: each run takes its
    data from the cache the size's `cache_cold` arm left (`cache_<size>_0`), or fills it."""
    started, cores = {}, os.cpu_count() or 1
    validation = SHARED / "validation.jsonl"
    for core, size in enumerate(sizes):
        train, _ = make_corpus(size, work)
        out = work / f"train_run_{size}"
        shutil.rmtree(out, ignore_errors=True)
        flags = ["--config", "recipes/configs/bible_en_es_small.yaml", "--train_file", str(train),
                 "--validation_file", str(validation), "--output_dir", str(out), "--max_steps", "1000000",
                 "--max_train_minutes", str(minutes), "--train_clock", "cpu", "--report_to", "none", "--plot", "false",
                 "--num_beams", "1", "--max_predict_samples", "200",  # a check that it learns, not a quality figure
                 "--data_cache_dir", str(work / f"cache_{size}_0")]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(work / f"hf_cache_train_{size}"),
               "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
        log = open(work / f"train_run_{size}.log", "w")
        command = ["taskset", "-c", str(core % cores), sys.executable, "recipes/translate.py", *flags]
        started[size] = (subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), out)
    runs = {}
    for size, (proc, out) in started.items():
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest of all children
        if status:
            raise SystemExit(f"training run at {size} pairs failed; see {work / f'train_run_{size}.log'}")
        results = json.loads((out / "eval_results.json").read_text("utf-8"))
        info = json.loads((out / "run_info.json").read_text("utf-8"))
        training = results["training"]
        seconds = training["training_minutes"] * 60
        runs[str(size)] = {"steps": training["steps"], "epochs": training["epochs"], "cpu_minutes": seconds / 60,
                           "target_tokens_per_cpu_s": training["target_tokens"] / seconds,
                           "tokens_per_cpu_s": training["tokens"] / seconds,
                           "validation_bleu_200_greedy": results["validation"]["bleu"],
                           "peak_rss_mb": usage.ru_maxrss / 1024,
                           "data_stages_s": round(sum(s["seconds"] for s in info.get("data_stages", [])), 1)}
        print("training run", size, json.dumps(runs[str(size)]), flush=True)
    return runs


def bad_line_at_700k(work: Path) -> list[dict]:
    """A 700,000-line file whose line 700,000 lacks its target: each reader must name that line."""
    import time

    from bigmodel_hf.data import DataError, load_translation_dataset
    from bigmodel_hf.streaming import TranslationStream

    path = work / "bad_700k.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for i in range(1, 700_001):
            pair = {"en": f"sentence {i}", "es": f"frase {i}"} if i != 700_000 else {"en": "only a source"}
            out.write(json.dumps({"translation": pair}) + "\n")
    found = []
    for reader, read in (("map-style loader", lambda: load_translation_dataset(path, validation_size=None)),
                         ("streaming reader", lambda: [None for _ in TranslationStream(path).batches()])):
        started = time.perf_counter()
        try:
            read()
            message = "no error (a miss)"
        except DataError as error:
            message = str(error).replace(str(path), path.name)
        found.append({"reader": reader, "message": message, "seconds": round(time.perf_counter() - started, 1)})
        print(found[-1], flush=True)
    path.unlink()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30_000, 300_000])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--skip_bad_line", action="store_true", help="skip the line-700,000 check")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bigmodel_data_scale")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "data_scale.json")
    parser.add_argument("--training_sizes", type=int, nargs="*", default=[],
                        help="instead of the data arms: one real training run per size, side by side")
    parser.add_argument("--training_minutes", type=float, default=30.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    # sizes measured earlier (another invocation) stay on the page; those measured now replace theirs
    measured: dict = json.loads(args.json.read_text("utf-8")) if args.json.is_file() else {}
    if args.training_sizes:
        measured["training_runs"] = training_runs(args.training_sizes, args.training_minutes, args.work)
        args.json.write_text(json.dumps(measured, indent=1) + "\n", "utf-8")
        write_page(measured)
        return
    for size in args.sizes:
        # the capped arm's limit: the bound, 1.3x the 30k map-style peak (measured earlier or just now)
        small = measured.get("30000", {}).get("map_1_worker")
        cap = 1.3 * _median([r["peak_rss_mb"] for r in small]) if small else None
        train, valid = make_corpus(size, args.work)
        arms: dict[str, list] = {}
        for round_ in range(args.rounds):
            order = [arm for arm in ARMS if arm in args.arms]
            if round_ % 2:  # alternate the order between rounds; a warm cache still follows its cold run
                order.reverse()
                if "cache_warm" in order:
                    order.remove("cache_warm")
                    order.insert(order.index("cache_cold") + 1, "cache_warm")
            cache = args.work / f"cache_{size}_{round_}"
            shutil.rmtree(cache, ignore_errors=True)
            for arm in order:
                kwargs = dict(map_1_worker={}, map_2_workers=dict(workers=2), cache_cold=dict(cache=cache),
                              cache_warm=dict(cache=cache), streaming=dict(streaming=True),
                              map_capped=dict(memory_limit_mb=cap))[arm]
                if arm == "map_capped" and (cap is None or not os.access(CGROUP_V1, os.W_OK)):
                    print(f"{size} map_capped: skipped (needs the 30k map_1_worker peak and a writable {CGROUP_V1})")
                    continue
                result = run_arm(train, valid, args.work, **kwargs)
                print(size, arm, json.dumps({k: v for k, v in result.items() if k != "stages"}), flush=True)
                arms.setdefault(arm, []).append(result)
        measured.setdefault(str(size), {}).update(arms)  # arms not rerun keep their earlier figures
        args.json.write_text(json.dumps(measured, indent=1) + "\n", "utf-8")
    if not args.skip_bad_line:
        measured["bad_line_at_700k"] = bad_line_at_700k(args.work)
    args.json.write_text(json.dumps(measured, indent=1) + "\n", "utf-8")
    write_page(measured)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _all_stages(result) -> float:
    """Seconds of the outermost stages (a cache stage holds the load and clean stages it ran on a miss)."""
    inner = {"load", "clean"} if any(s["stage"].endswith("(cache)") for s in result["stages"]) else set()
    return sum(s["seconds"] for s in result["stages"] if s["stage"] not in inner)


def _stage_seconds(results, name):
    return _median([next((s["seconds"] for s in r["stages"] if s["stage"] == name), None) for r in results])


def write_page(measured: dict) -> None:
    lines = ["# Data at scale (issue 19): `benchmarks/data_scale.py`", "",
             "Written by `benchmarks/data_scale.py`; medians over the rounds run. See the notes at the end.", "",
             "| pairs | arm | first step, wall s | first step, CPU s | peak RSS MB | peak anonymous RSS MB "
             "| all data stages s | load s | clean s | tokenizer s | tokenize s | cache |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, arms in measured.items():
        if not size.isdigit():
            continue
        for arm, results in arms.items():
            cache = ",".join(sorted({s.get("cache", "") for r in results for s in r["stages"] if "cache" in s})) or "-"
            cells = [_median([r["first_step_wall"] for r in results]), _median([r["first_step_cpu"] for r in results]),
                     _median([r["peak_rss_mb"] for r in results]),
                     _median([r.get("peak_anon_mb") for r in results]), _median([_all_stages(r) for r in results]),
                     _stage_seconds(results, "load"),
                     _stage_seconds(results, "clean"), _stage_seconds(results, "tokenizer"),
                     _stage_seconds(results, "tokenize")]
            lines.append(f"| {int(size):,} | {arm} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells)
                         + f" | {cache} |")
    lines += ["", "## Against the issue's targets", ""]
    sizes = sorted(int(size) for size in measured if size.isdigit())

    def med(size, arm, key):
        results = measured.get(str(size), {}).get(arm, [])
        return _median([r[key] for r in results]) if results else None

    def prep(size, arm):  # the stages that workers parallelise
        results = measured.get(str(size), {}).get(arm, [])
        parts = [_stage_seconds(results, "clean"), _stage_seconds(results, "tokenize")]
        return sum(parts) if results and None not in parts else None

    for size in sizes:
        cold, warm = med(size, "cache_cold", "first_step_cpu"), med(size, "cache_warm", "first_step_cpu")
        if cold and warm:
            lines.append(f"- {size:,} pairs, warm cache vs cold, CPU s to the first step: {cold:.1f} -> {warm:.1f} "
                         f"({cold / warm:.2f}x; target 10x)")
            stages = [_median([_all_stages(r) for r in measured[str(size)][arm]]) for arm in ("cache_cold", "cache_warm")]
            lines.append(f"- {size:,} pairs, warm cache vs cold, all data stages (wall s): {stages[0]:.1f} -> "
                         f"{stages[1]:.1f} ({stages[0] / max(stages[1], 1e-9):.1f}x)")
        one, two = prep(size, "map_1_worker"), prep(size, "map_2_workers")
        if one and two:
            lines.append(f"- {size:,} pairs, clean + tokenize wall s, 1 vs 2 workers: {one:.1f} vs {two:.1f} "
                         f"({one / two:.2f}x; target 1.6x)")
    for arm in ("map_1_worker", "streaming"):
        for key, what in (("peak_rss_mb", "peak RSS (ru_maxrss, mapped Arrow pages included)"),
                          ("peak_anon_mb", "peak anonymous RSS")):
            rss = [(size, med(size, arm, key)) for size in sizes]
            rss = [(size, value) for size, value in rss if value]
            if len(rss) > 1:
                (small, low), (large, high) = rss[0], rss[-1]
                lines.append(f"- {what}, {arm}: {low:.0f} MB at {small:,} -> {high:.0f} MB at {large:,} pairs "
                             f"({high / low:.2f}x; target at most 1.3x from 30k to 3M)")
    for size in sizes:
        for run in measured[str(size)].get("map_capped", []):
            verdict = "reached its first step" if run["completed"] else "did not complete (killed or failed)"
            lines.append(f"- {size:,} pairs, map-style in a memory cgroup of {run['memory_limit_mb']:.0f} MB (1.3x the "
                         f"30k map-style peak RSS, no swap): {verdict}; the group's peak usage "
                         f"{run['cgroup_max_usage_mb']:.0f} MB, the limit reached {run['limit_hits']} times (each "
                         "time the kernel reclaimed file pages, which are re-read when needed, and killed nothing)")
    per_pair = [(size, _median([_all_stages(r) for r in measured[str(size)]["map_1_worker"]]) / size)
                for size in sizes if size >= 300_000 and "map_1_worker" in measured[str(size)]]
    if len(per_pair) > 1:
        (small, low), (large, high) = per_pair[0], per_pair[-1]
        lines.append(f"- all data stages per pair, map_1_worker: {low * 1e6:.0f} us at {small:,} -> {high * 1e6:.0f} us "
                     f"at {large:,} pairs ({high / low:.2f}x; target within 15% from 300k to 3M)")
    if runs := measured.get("training_runs"):
        lines += ["", "## Training on the corpus (the recipe as a user runs it, side by side, one core each)", "",
                  "| pairs | CPU minutes | steps | epochs | non-padding target tokens / CPU s | all tokens / CPU s "
                  "| validation BLEU (200, greedy) | peak RSS MB | data stages s |", "|---|---|---|---|---|---|---|---|---|"]
        for size, run in runs.items():
            lines.append(f"| {int(size):,} | {run['cpu_minutes']:.1f} | {run['steps']} | {run['epochs']:.2f} | "
                         f"{run['target_tokens_per_cpu_s']:.0f} | {run['tokens_per_cpu_s']:.0f} | "
                         f"{run['validation_bleu_200_greedy']:.2f} | {run['peak_rss_mb']:.0f} | {run['data_stages_s']} |")
        rates = [run["target_tokens_per_cpu_s"] for run in runs.values()]
        if len(rates) > 1:
            lines.append(f"\nTarget tokens per CPU second, largest corpus vs smallest: {rates[-1] / rates[0]:.3f}x "
                         "(target: equal within noise).")
    for check in measured.get("bad_line_at_700k", []):
        lines.append(f"\nBad input at line 700,000, {check['reader']} ({check['seconds']} s): `{check['message']}`")
    lines += ["", "## Notes", "", NOTES]
    RESULTS.write_text("\n".join(lines) + "\n", "utf-8")


if __name__ == "__main__":
    main()
