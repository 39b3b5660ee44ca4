"""The voicing screen speaker adaptation learns through (``ser_hf.audio.voicing``), on the real corpora and on loud
sounds with no voice.

For every clip of URDU and RAVDESS (decoded at 16 kHz) and every 3 s window of them (1 s hop, at -60 dBFS or louder,
as a stream would learn from them): whether :func:`~ser_hf.audio.voicing.holds_voice` takes it for a voice, and the
smallest periodic-frame count, level spread and pitch spread measured (the margins to the thresholds). Then the same
for synthetic hums, buzzes, noises, clicks and DC steps at -30 dBFS or louder (none may pass), and what the screen
costs: enrollment's level with the screen (:func:`~ser_hf.inference.enrollment_inputs.enrollment_level_db`) against
the RMS level alone it replaced, timed in interleaved rounds on the same 3 s windows (one core).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/voicing_screen.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, speedup, time_interleaved, wait_for_idle, write_result  # noqa: E402

from ser_hf.audio import load_audio  # noqa: E402
from ser_hf.audio import voicing as voicing_module  # noqa: E402
from ser_hf.audio.voicing import measure_voicing  # noqa: E402
from ser_hf.inference.enrollment_inputs import ENROLLMENT_SILENCE_DB, enrollment_level_db  # noqa: E402
from ser_hf.inference.streaming import window_level_db  # noqa: E402

RATE = 16000


def _measures(waves: list[np.ndarray]) -> dict:
    found = [measure_voicing(wave, RATE) for wave in waves]
    return {
        "count": len(found),
        "voiced": sum(v.voiced for v in found),
        "fewest_periodic_frames": min(v.periodic_frames for v in found),
        "smallest_level_spread_db": round(min(v.level_spread_db for v in found), 2),
        "smallest_pitch_spread_octaves": round(min(v.pitch_spread_octaves for v in found), 4),
    }


def _windows(wave: np.ndarray) -> list[np.ndarray]:
    size = 3 * RATE
    pieces = [wave[start:start + size] for start in range(0, max(1, wave.size - size + 1), RATE)]
    return [piece for piece in pieces if window_level_db(piece) >= ENROLLMENT_SILENCE_DB]


def corpus_section(name: str) -> tuple[dict, list[np.ndarray]]:
    clips = sorted((SHARED_DATA / name).rglob("*.flac"))
    waves = [load_audio(path, RATE) for path in clips]
    windows = [piece for wave in waves for piece in _windows(wave)]
    print(f"{name}: {len(waves)} clips, {len(windows)} windows")
    return {"clips": _measures(waves), "windows_3s": _measures(windows)}, windows


def no_voice() -> dict[str, np.ndarray]:
    t = np.arange(3 * RATE) / RATE
    on_off = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    noise = np.random.default_rng(0).standard_normal(t.size)
    brown = np.cumsum(noise)
    brown = 0.3 * brown / np.abs(brown).max()
    hum = sum(0.03 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3))
    return {
        "mains hum with harmonics": hum,
        "hum switched on and off": on_off * hum,
        "100 Hz buzz switched on and off": on_off * 0.05 * np.sign(np.sin(2 * np.pi * 100 * t)),
        "1 kHz beeps": on_off * 0.05 * np.sin(2 * np.pi * 1000 * t),
        "white noise": 0.05 * noise,
        "clipped noise": np.clip(0.5 * noise, -0.3, 0.3),
        "noise bursts": on_off * 0.05 * noise,
        "brown noise bursts": on_off * brown,
        "a click train at 100 Hz": np.where(np.arange(t.size) % 160 == 0, 0.9, 0.0),
        "DC steps": 0.2 * (np.floor(t * 5) % 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=["urdu", "ravdess"])
    parser.add_argument("--timed-windows", type=int, default=200, help="3 s windows in each timed round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    thresholds = {name: getattr(voicing_module, name) for name in
                  ("PERIODICITY", "MIN_PERIODIC_FRAMES", "MIN_LEVEL_SPREAD_DB", "MIN_PITCH_SPREAD_OCTAVES")}
    results: dict = {"thresholds": thresholds, "corpora": {}}
    timed: list[np.ndarray] = []
    for name in args.corpora:
        results["corpora"][name], windows = corpus_section(name)
        timed += windows
    results["no_voice"] = {name: {"level_db": round(window_level_db(wave), 1), "voiced": measure_voicing(wave, RATE).voiced}
                           for name, wave in no_voice().items()}
    timed = [window for window in timed if window.size == 3 * RATE]  # a clip shorter than 3 s is a window of its own
    timed = timed[:: max(1, len(timed) // args.timed_windows)][:args.timed_windows]
    idle = wait_for_idle()
    times, _ = time_interleaved({
        "rms level alone": lambda: [window_level_db(w) for w in timed],
        "level with the voicing screen": lambda: [enrollment_level_db(w, RATE) for w in timed],
    }, repeats=args.repeats)
    per_window = {name: round(1000 * record["seconds"]["median"] / len(timed), 3) for name, record in times.items()}
    results["timing"] = {
        "windows": len(timed), "idle_wait": idle, "times": times, "ms_per_3s_window_median": per_window,
        "slowdown": speedup(times["level with the voicing screen"]["seconds"], times["rms level alone"]["seconds"]),
    }
    write_result("voicing_screen", results)


if __name__ == "__main__":
    main()
