"""Hostile file names, ``--out`` clobbering, bad checkpoints and recipe bombs, measured: ROBUSTNESS.md's rows.

Part of ``benchmarks/robustness_inputs.py`` (section ``hostile`` of ``results/robustness_inputs.json``); alone,
``.venv/bin/python benchmarks/robustness_inputs.py --only-hostile`` writes ``results/robustness_hostile.json``.
Every cell is what the run observed (exit status, error class, message, bytes before and after, time, peak
memory); ``✓`` marks the documented outcome, ``✗`` anything else:

- **names**: file names that are not UTF-8 or are hostile (newlines, quotes, shell syntax, 255 bytes) through
  ``ser-hf predict`` (JSONL and CSV, then the same command again to resume), ``ser-hf data summary`` (text and
  ``--json``) and ``ser-hf evaluate --skip-bad-files``, with stdout and stderr as strict UTF-8 streams;
- **clobber**: ``ser-hf predict --out`` pointing at files it must not touch (an input, notes, a config, a
  manifest, another model's output, a folder): exit status, message, and whether the file kept its bytes;
- **checkpoints** (:mod:`hostile_checkpoints`): broken classifier checkpoints and saved baselines, each loaded in
  a fresh process (``EmotionRecognizer.from_pretrained`` / ``load_baseline``): error class, whether the message
  names the folder, and the peak RSS growth of the load (``VmHWM``, reset after the imports) before it failed;
- **recipes**: alias bombs, duplicate keys and out-of-range numbers, each parsed by ``parse_run`` in a fresh
  process: error class, time and peak RSS growth.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import time
import warnings
from pathlib import Path

from hostile_checkpoints import FOUR, _load_all, _row, _shown, run_checkpoints

# (name, what it is); b"\xe9broken.wav" holds no audio: its record must be an error naming it.
HOSTILE_NAMES = [
    (b"\xff\xfe.wav", "bytes that are not UTF-8"),
    (b"\\xff\\xfe.wav", "a real backslash-x name, the display form of the one above"),
    (b"\xe9broken.wav", "not UTF-8, and not audio"),
    (b"new\nline.wav", "a newline"),
    (b"tab\tcr\r.wav", "a tab and a carriage return"),
    (b'comma, "quote".wav', "a comma and double quotes"),
    (b"-dash.wav", "a leading dash"),
    (b"$(touch pwned).wav", "shell syntax"),
    (b"x" * 251 + b".wav", "255 bytes, the longest name Linux allows"),
    ("é-ü-中.wav".encode(), "UTF-8, not ASCII (control)"),
]


def _fs(folder: str | os.PathLike, name: bytes) -> str:
    return os.fsdecode(os.path.join(os.fsencode(os.fspath(folder)), name))


def _literal(name: bytes) -> str:
    """A name as a Python literal shows it: UTF-8 as text, other bytes as ``\\xNN``, controls as ``\\n``."""
    try:
        return repr(name.decode("utf-8"))[1:-1]
    except UnicodeDecodeError:
        return repr(name)[2:-1]


def _cell(text: str) -> str:
    """Text for a Markdown table cell: its own '|' escaped, a code span cut open by truncation closed."""
    return text.replace("|", "\\|") + ("`" if text.count("`") % 2 else "")


def _cli(argv: list[str]) -> dict:
    """``ser-hf ARGV`` in this process with stdout and stderr encoded as a UTF-8 terminal does (strict)."""
    from ser_hf.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    streams = [io.TextIOWrapper(b, encoding="utf-8", errors="strict", write_through=True) for b in (out, err)]
    crash = None
    with contextlib.redirect_stdout(streams[0]), contextlib.redirect_stderr(streams[1]), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status = main(argv)
        except Exception as error:  # noqa: BLE001 - a traceback is exactly what this must show
            status, crash = None, f"{type(error).__name__}: {error}"
    return {"status": status, "crash": crash, "stdout": out.getvalue().decode("utf-8"),
            "stderr": err.getvalue().decode("utf-8"), "warnings": [str(w.message) for w in caught
                                                                    if issubclass(w.category, UserWarning)]}


# ---------------------------------------------------------------------------------------------- names

def _predict_names(model: Path, folder: str, root: Path, suffix: str) -> tuple[dict, dict]:
    from ser_hf.inference.jobs import read_records
    from ser_hf.inference.outputs import record_key
    from ser_hf.paths import display_path

    out = _fs(root, b"out\xff." + suffix.encode())  # the output's own name is not UTF-8 either
    argv = ["predict", "--model", str(model), folder, "--out", out, "--no-progress"]
    first, again = _cli(argv), _cli(argv)
    records = read_records(out)
    by_key: dict[str, list[dict]] = {}
    for record in records:
        by_key.setdefault(record_key(record), []).append(record)
    cells = {}
    for name, _ in HOSTILE_NAMES:
        path = _fs(folder, name)
        found = by_key.get(path, [])
        record = found[0] if found else {}
        if name.startswith(b"\xe9"):
            ok = len(found) == 1 and display_path(path) in (record.get("error") or "")
            what = "error record naming it" if ok else f"{len(found)} record(s): {_shown(str(record), 80)}"
        else:
            ok = len(found) == 1 and record.get("label") in FOUR and not record.get("error")
            what = f"label {record.get('label')}" if len(found) == 1 else f"{len(found)} records"
        extra = ", `path_base64`" if record.get("path_base64") else ""
        cells[name] = {"result": f"{len(found)} record, {what}{extra}" if found else "no record", "ok": ok,
                       "path": record.get("path")}
    with open(out, "rb") as handle:
        raw = handle.read()
    try:
        raw.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    summary = json.loads(first["stdout"]) if first["status"] == 0 else {}
    resumed = json.loads(again["stdout"]) if again["status"] == 0 else {}
    job = {"exit": [first["status"], again["status"]], "crash": first["crash"] or again["crash"],
           "inputs": summary.get("inputs"), "records": len(records),
           "resumed_skipped": resumed.get("skipped"), "resumed_predicted": resumed.get("predicted"),
           "output_utf8": utf8, "out_shown": summary.get("out"), "pwned_created": os.path.exists("pwned")}
    job["ok"] = (job["exit"] == [0, 0] and not job["crash"] and job["records"] == len(HOSTILE_NAMES) + 1 == job["inputs"]
                 and job["resumed_skipped"] == job["inputs"] and job["resumed_predicted"] == 0 and utf8
                 and not job["pwned_created"])
    return cells, job


def run_names(root: Path, model: Path) -> dict:
    """Hostile names through ``ser-hf predict`` (JSONL, CSV), ``data summary`` and ``evaluate --skip-bad-files``."""
    from ser_hf.paths import display_path, record_path
    from ser_hf.testing.corpora import make_corpus_tree, write_tone

    folder = _fs(root, b"names")
    os.makedirs(folder)
    clip = write_tone(Path(folder) / "good.wav", duration=0.3)
    for name, _ in HOSTILE_NAMES:
        if name.startswith(b"\xe9"):
            Path(_fs(folder, name)).write_bytes(b"not audio")
        else:
            shutil.copyfile(clip, _fs(folder, name))
    cells, jobs = {}, {}
    for suffix in ("jsonl", "csv"):
        cells[suffix], jobs[suffix] = _predict_names(model, folder, root, suffix)
    rows = [{"input": f"`{_shown(_literal(name), 40)}`: {what}", "jsonl": cells["jsonl"][name],
             "csv": cells["csv"][name]} for name, what in HOSTILE_NAMES]

    # A corpus with one clip named with a byte that is not UTF-8 and one with a newline.
    corpus = make_corpus_tree("folder", root / "corpus")
    good = sorted(corpus.rglob("*.wav"))
    odd, newline = _fs(good[0].parent, b"odd\xff.wav"), str(good[0].parent / "new\nline.wav")
    shutil.copyfile(good[0], odd)
    shutil.copyfile(good[0], newline)
    shown = display_path(odd)
    argv = ["--corpus", "folder", "--data-dir", str(corpus)]
    text, as_json = _cli(["data", "summary", *argv]), _cli(["data", "summary", *argv, "--json"])
    unreadable = json.loads(as_json["stdout"]).get("unreadable", []) if as_json["status"] == 0 else []
    exact = [item for item in unreadable if record_path(item) == odd]
    report_dir = root / "eval"
    evaluated = _cli(["evaluate", "--model", str(model), *argv, "--skip-bad-files", "--out", str(report_dir),
                      "--no-progress", "--n-resamples", "0"])
    scored = None
    if evaluated["status"] == 0:
        scored = json.loads((report_dir / "report.json").read_text())["metadata"]["clips_in_split"]
    warned = next((w for w in evaluated["warnings"] if "odd\\xff.wav" in w), "")
    named = "odd\\xff.wav: its file name is not valid UTF-8"
    listed = next((line[line.find("odd"):] for line in text["stdout"].splitlines() if "odd" in line), "nothing")
    others = [
        {"entry": "`ser-hf data summary`", "ok": text["status"] == 0 and named in text["stdout"] and not text["crash"],
         "result": f"exit {text['status']}; lists '{_shown(listed, 90)}'"},
        {"entry": "`ser-hf data summary --json`", "ok": as_json["status"] == 0 and len(exact) == 1
         and exact[0]["path"] == shown,
         "result": f"exit {as_json['status']}; `unreadable` holds it as path "
                   f"'{exact[0]['path'].replace(str(corpus) + os.sep, '') if exact else None}' "
                   f"+ `path_base64` (decodes to the file: {len(exact) == 1})"},
        {"entry": "`ser-hf evaluate --skip-bad-files`", "ok": evaluated["status"] == 0 and named in warned
         and scored == len(good) + 1,
         "result": f"exit {evaluated['status']}; the warning names '{_shown(warned[warned.find('odd'):], 60) if warned else None}'; "
                   f"{scored} clips scored ({len(good)} + the newline name)"},
    ]
    return {"rows": rows, "jobs": jobs, "corpus": others}


# -------------------------------------------------------------------------------------------- clobber

def _state(path: Path) -> str:
    if path.is_dir():
        return "folder: " + ",".join(sorted(os.listdir(path)))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def run_clobber(root: Path, model: Path, other: Path) -> list[dict]:
    """``ser-hf predict --out`` at files it must leave alone: exit status, message, bytes before and after."""
    from ser_hf.inference.jobs import predict_files
    from ser_hf.testing.corpora import write_tone

    folder = root / "clobber"
    audio = [str(write_tone(folder / "audio" / f"{name}.wav", duration=0.3, seed=i)) for i, name in enumerate("abc")]
    os.link(audio[0], folder / "hardlink.jsonl")
    files = {"notes.txt": b"meeting notes\nno JSON here\n", "config.json": b'{"sampling_rate": 16000}',
             "manifest.csv": b"path,label,speaker\naudio/a.wav,happy,s1\n",
             "results.csv": b"path,label,score,error,notes\n/x/a.wav,happy,0.5,,keep me\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "list.csv").write_text("path,label\n" + "".join(f"{p},happy\n" for p in audio))
    (folder / "predictions.jsonl").mkdir()
    predict_files(other, audio[:1], folder / "theirs.jsonl", progress=False)
    predict_files(other, audio[:1], folder / "theirs.csv", progress=False)
    predict_files(model, audio[:1], folder / "ours.jsonl", progress=False)
    cases = [
        ("an input: `--out audio/a.wav`, a.wav among the inputs", audio[0], audio),
        ("a hard link to an input, named `hardlink.jsonl`", folder / "hardlink.jsonl", audio),
        ("notes: `notes.txt`", folder / "notes.txt", audio),
        ("a one-line config: `config.json`", folder / "config.json", audio),
        ("a manifest CSV with a `path` column: `manifest.csv`", folder / "manifest.csv", audio),
        ("a CSV with `path, label, score, error` and a column of its own", folder / "results.csv", audio),
        ("the manifest that is also the input: `list.csv`", folder / "list.csv", [str(folder / "list.csv")]),
        ("another model's JSONL output (5 emotions)", folder / "theirs.jsonl", audio),
        ("another model's CSV output (5 emotions)", folder / "theirs.csv", audio),
        ("its own JSONL output, read as CSV (`--format csv`)", folder / "ours.jsonl", audio),
        ("a folder: `predictions.jsonl/`", folder / "predictions.jsonl", audio),
    ]
    rows = []
    for what, out, inputs in cases:
        out = Path(out)
        before = _state(out)
        extra = ["--format", "csv"] if "--format csv" in what else []
        run = _cli(["predict", "--model", str(model), *map(str, inputs), "--out", str(out), "--no-progress", *extra])
        kept = _state(out) == before
        message = run["stderr"].strip().splitlines()[-1] if run["stderr"].strip() else ""
        leftovers = sorted(p.name for p in out.parent.glob(".*.tmp"))
        shown = message.replace(str(folder) + os.sep, "")  # the table shows names relative to the test folder
        rows.append({"input": what, "exit": run["status"], "message": _shown(shown, 170),
                     "unchanged": kept, "temp_files_left": leftovers, "crash": run["crash"],
                     "ok": run["status"] == 2 and kept and not leftovers and out.name in message})
    return rows


# -------------------------------------------------------------------------------------------- recipes

def _laughs(levels: int, width: int) -> str:
    """One key whose list nests aliases ``levels`` deep: ``width ** levels`` values once expanded."""
    lines = ["gain_db:", f"  - &a0 [{', '.join(['1'] * width)}]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


RECIPES = [  # (file name, what, text)
    ("valid.yaml", "a valid recipe (control: parses)", "corpus: urdu\nlearning_rate: 0.001\ngain_db: &g [-6, 6]\n"
                                                         "noise_snr_db: *g\n"),
    ("laughs-9x9.yaml", "billion laughs: 9 levels of 9 aliases (9^9 = 387M values)", _laughs(9, 9)),
    ("laughs-40x2.yaml", "40 levels of 2 aliases (2^40 values)", _laughs(40, 2)),
    ("laughs-4x300.yaml", "4 levels of 300 aliases (8.1e9 values)", _laughs(4, 300)),
    ("recursive.yaml", "a recursive alias: `gain_db: &g [1, *g]`", "gain_db: &g [1, *g]\n"),
    ("strings.yaml", "9,000 aliases of one 12 KB string (108 MB of text)",
     f"run_name: &s {'x' * 12_000}\nlabel_map: [" + ", ".join(["*s"] * 9_000) + "]\n"),
    ("dup.yaml", "a key twice (YAML): `learning_rate`", "corpus: urdu\nlearning_rate: 0.1\nlearning_rate: 0.2\n"),
    ("dup.json", "a key twice (JSON): `num_folds`", '{"corpus": "urdu", "num_folds": 3, "num_folds": 4}'),
    ("negative.yaml", "`probe_max_epochs: -5`", "probe_max_epochs: -5\n"),
    ("nan.yaml", "`learning_rate: .nan`", "learning_rate: .nan\n"),
    ("minus-inf.yaml", "`weight_decay: -.inf`", "weight_decay: -.inf\n"),
    ("nan-list.yaml", "`gain_db: [-6, .nan]`", "gain_db: [-6, .nan]\n"),
    ("negative-exp.yaml", "`weight_decay: -1.0e-5` (exponent notation)", "weight_decay: -1.0e-5\n"),
]


def run_recipes(root: Path) -> list[dict]:
    """Recipe bombs and bad numbers, each parsed by ``parse_run`` in a fresh process."""
    folder = root / "recipes"
    folder.mkdir(parents=True)
    paths = []
    for name, _, text in RECIPES:
        paths.append(folder / name)
        paths[-1].write_text(text)
    results = _load_all("recipe", paths)
    return [{"file_bytes": path.stat().st_size, **_row(what, "recipe", path, name == "valid.yaml", result)}
            for (name, what, _), path, result in zip(RECIPES, paths, results)]


# ---------------------------------------------------------------------------------------------- all

def run_hostile(root: Path) -> dict:
    from ser_hf.testing.models import tiny_classifier

    root.mkdir(parents=True, exist_ok=True)
    model = tiny_classifier("wav2vec2", root / "wav2vec2", FOUR)
    other = tiny_classifier("wav2vec2", root / "other", [*FOUR, "fearful"])
    whisper = tiny_classifier("whisper", root / "whisper", FOUR)
    here, seconds, start = os.getcwd(), {}, time.perf_counter()
    os.chdir(root)  # `$(touch pwned).wav` would leave ./pwned if anything ran it through a shell
    try:
        names = run_names(root, model)
    finally:
        os.chdir(here)
    seconds["names"], start = round(time.perf_counter() - start, 1), time.perf_counter()
    clobber = run_clobber(root, model, other)
    seconds["clobber"], start = round(time.perf_counter() - start, 1), time.perf_counter()
    checkpoints = run_checkpoints(root, {"wav2vec2": model, "whisper": whisper})
    seconds["checkpoints"], start = round(time.perf_counter() - start, 1), time.perf_counter()
    recipes = run_recipes(root)
    seconds["recipes"] = round(time.perf_counter() - start, 1)
    return {"names": names, "clobber": clobber, "checkpoints": checkpoints, "recipes": recipes, "seconds": seconds}


def _mark(ok) -> str:
    return {True: " ✓", False: " ✗", None: ""}[ok]


def _mb(value) -> str:
    return "n/a" if value is None else f"{value:.1f} MB"


def hostile_markdown(result: dict) -> dict[str, str]:
    """One Markdown table per class, keyed by class."""
    names = result["names"]
    lines = ["| file name | `ser-hf predict` JSONL | `ser-hf predict` CSV |", "|---|---|---|"]
    lines += [f"| {r['input']} | {r['jsonl']['result']}{_mark(r['jsonl']['ok'])} | {r['csv']['result']}"
              f"{_mark(r['csv']['ok'])} |" for r in names["rows"]]
    jobs = names["jobs"]
    lines.append("| the job (`--out out\\xff.jsonl` / `.csv`), then the same command again | " + " | ".join(
        f"exit {j['exit'][0]} then {j['exit'][1]}; {j['records']} records for {j['inputs']} inputs; the rerun skipped "
        f"{j['resumed_skipped']}, predicted {j['resumed_predicted']}; output UTF-8: {j['output_utf8']}; strict "
        f"stdout/stderr: {'a crash' if j['crash'] else 'no error'}; `pwned` created: {j['pwned_created']}{_mark(j['ok'])}"
        for j in (jobs["jsonl"], jobs["csv"])) + " |")
    lines += ["", "| corpus entry point (a clip named `odd\\xff.wav`, one named `new\\nline.wav`) | what happened |",
              "|---|---|"]
    lines += [f"| {r['entry']} | {r['result']}{_mark(r['ok'])} |" for r in names["corpus"]]
    clobber = ["| `--out` | exit | message (last line of stderr) | file afterwards |", "|---|---|---|---|"]
    clobber += [f"| {r['input']} | {r['exit']} | {_cell(r['message'])} | "
                f"{'byte-identical' if r['unchanged'] else 'CHANGED'}{', temp files left' if r['temp_files_left'] else ''}"
                f"{_mark(r['ok'])} |" for r in result["clobber"]]
    checkpoints = ["| checkpoint | error | names the folder | load: peak RSS growth (process peak) | time |",
                   "|---|---|---|---|---|"]
    checkpoints += [f"| {r['input']} | {r['error'] or 'loaded'}{': ' + _cell(r['message'][:110]) + ' ...' if r['error'] else ''}"
                    f" | {'yes' if r['names_file'] else 'no' if r['error'] else ''} | {_mb(r['rss_growth_mb'])} "
                    f"({_mb(r['peak_rss_mb'])}) | {r['seconds']} s{_mark(r['ok'])} |" for r in result["checkpoints"]]
    recipes = ["| recipe | file | error | time | peak RSS growth |", "|---|---|---|---|---|"]
    recipes += [f"| {r['input']} | {r['file_bytes']:,} B | {r['error'] or 'parsed'}"
                f"{': ' + _cell(r['message'][:120]) + ' ...' if r['error'] else ''} | {r['seconds']} s | "
                f"{_mb(r['rss_growth_mb'])}{_mark(r['ok'])} |" for r in result["recipes"]]
    counts = []
    for label, rows in (("names", [c for r in names["rows"] for c in (r["jsonl"], r["csv"])] + list(jobs.values())
                         + names["corpus"]), ("clobber", result["clobber"]), ("checkpoints", result["checkpoints"]),
                        ("recipes", result["recipes"])):
        counts.append(f"{label}: {sum(bool(r['ok']) for r in rows)} of {len(rows)} as documented")
    return {"names": "\n".join(lines), "clobber": "\n".join(clobber), "checkpoints": "\n".join(checkpoints),
            "recipes": "\n".join(recipes), "summary": "; ".join(counts) + "."}
