"""Named, seeded audio degradations, parsed from a compact spec, for scoring a model on degraded clips.

``ser-hf evaluate --perturb SPEC`` scores the same clips clean and under every condition of SPEC
(:mod:`ser_hf.evaluation.robustness`). The grammar::

    SPEC      := CONDITION ("," CONDITION)*
    CONDITION := KIND (":" NAME "=" NUMBER)*

for example ``"noise:snr=20,noise:snr=5,babble:snr=10,telephone,gain:db=-20,reverb:rt60=0.6,resample:rate=8000"``.

============  ==========================  ===============================================================
kind          parameters                  what it does
============  ==========================  ===============================================================
``noise``     ``snr`` (dB)                adds white Gaussian noise at that SNR
``babble``    ``snr`` (dB), ``talkers=6`` adds babble-like noise at that SNR (see :func:`babble_noise`)
``telephone`` ``low=300``, ``high=3400``  resamples to 8 kHz, band-passes low-high Hz, resamples back
``gain``      ``db``                      multiplies the samples by ``10 ** (db / 20)`` (no clipping)
``reverb``    ``rt60`` (s), ``drr=0``     convolves with a synthetic room response (see :func:`add_reverb`)
``resample``  ``rate`` (Hz)               resamples down to ``rate`` and back (loses all above rate / 2)
============  ==========================  ===============================================================

The degradations themselves, and what SNR means, are :mod:`ser_hf.evaluation.degradations`; this module names them,
checks their parameters and seeds their draws.

Every random draw of a condition on a clip comes from a generator seeded with the run's seed, the
condition's full key (kind and every parameter, defaults included) and the clip's key (the content hash
of its audio, :func:`ser_hf.evaluation.robustness.clip_keys`): a clip is degraded the same way whatever
the order of the clips, the batch size, the other clips evaluated or the process.

Example:
    ```python
    >>> conditions = parse_perturbations("noise:snr=10,telephone")
    >>> [c.name for c in conditions]
    ['noise:snr=10', 'telephone']
    >>> import numpy as np
    >>> wave = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    >>> noisy = conditions[0].apply(wave, 16000, seed=0, clip_key="abc")
    >>> noisy.shape, noisy.dtype
    ((16000,), dtype('float32'))
    >>> np.array_equal(noisy, conditions[0].apply(wave, 16000, seed=0, clip_key="abc"))  # the same clip, the same noise
    True

    ```
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_hf.audio import float_samples
from ser_hf.errors import AudioError, EvaluationError
from ser_hf.evaluation.degradations import (
    ALGORITHM_VERSION,
    TELEPHONE_RATE,
    _babble,
    _gain,
    _resample,
    _telephone,
    _white,
    add_reverb,
    babble_noise,
    mix_at_snr,
    speech_shaped_noise,
    telephone_band,
)

__all__ = [
    "KINDS", "Perturbation", "add_reverb", "babble_noise", "check_distinct", "mix_at_snr", "parse_perturbations",
    "perturbation_rng", "speech_shaped_noise", "telephone_band",
]

_EXAMPLE = "e.g. --perturb 'noise:snr=20,babble:snr=10,telephone,gain:db=-20,reverb:rt60=0.6,resample:rate=8000'"


# ----------------------------------------------------------------------------- the registry


def _number(value: float) -> str:
    """``value`` exactly, as briefly as it reads back: ``{:g}`` when that round-trips (``10``, ``-6``, ``0.6``: the
    names and cache keys conditions always had), else the shortest repr (``12.345678``, ``10.0000001``). Six
    digits alone gave two different conditions one name, one row and one cache folder."""
    value = float(value) + 0.0  # -0.0 becomes 0.0: one value, so one name, key and cache folder
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _signed(value: float) -> str:
    """:func:`_number` with its sign, ``+`` included (a gain reads ``+6 dB``)."""
    return ("+" if value >= 0 else "") + _number(value)


@dataclass(frozen=True)
class Parameter:
    """One parameter of a kind: its range and unit, and its default (None: required)."""

    name: str
    unit: str
    low: float
    high: float
    default: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class Kind:
    """A kind of degradation: ``function(wave, sampling_rate, rng, **parameters)`` and how to describe it."""

    name: str
    parameters: tuple[Parameter, ...]
    function: Callable[..., np.ndarray]
    describe: Callable[..., str]
    example: str
    random: bool = True  # whether it draws from the generator (the seed then matters)

    def usage(self) -> str:
        if not self.parameters:
            return f"'{self.name}' takes no parameters"
        names = ", ".join(f"{p.name} ({p.unit}, {p.low:g} to {p.high:g}"
                          + (")" if p.default is None else f", default {p.default:g})") for p in self.parameters)
        return f"'{self.name}' takes {names}, e.g. '{self.example}'"


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("noise", (Parameter("snr", "dB", -20, 60),), _white,
         lambda snr: f"white noise, SNR {_number(snr)} dB", "noise:snr=10"),
    Kind("babble", (Parameter("snr", "dB", -20, 60), Parameter("talkers", "voices", 1, 32, 6, integer=True)), _babble,
         lambda snr, talkers: f"babble-like noise ({_number(talkers)} talkers), SNR {_number(snr)} dB",
         "babble:snr=10"),
    Kind("telephone", (Parameter("low", "Hz", 100, 1000, 300), Parameter("high", "Hz", 2000, 3900, 3400)), _telephone,
         lambda low, high: f"telephone band {_number(low)}-{_number(high)} Hz at 8 kHz", "telephone", random=False),
    Kind("gain", (Parameter("db", "dB", -60, 40),), _gain, lambda db: f"gain {_signed(db)} dB (no clipping)",
         "gain:db=-20", random=False),
    Kind("reverb", (Parameter("rt60", "s", 0.05, 5), Parameter("drr", "dB", -20, 30, 0)), add_reverb,
         lambda rt60, drr: f"synthetic room, RT60 {_number(rt60)} s, direct-to-reverberant {_number(drr)} dB",
         "reverb:rt60=0.6"),
    Kind("resample", (Parameter("rate", "Hz", 1000, 48000, integer=True),), _resample,
         lambda rate: f"resampled through {_number(rate)} Hz", "resample:rate=8000", random=False),
)}
"""Every kind of degradation, by the name the spec uses."""


class _InvalidCondition(EvaluationError):
    """A condition :meth:`Perturbation.__post_init__` refuses; ``problem`` and ``fix`` let :func:`parse_condition` say
    the same about the spec item it came from."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        super().__init__(f"{where}: {problem}. {fix}")
        self.problem, self.fix = problem, fix


def _value_problem(parameter: Parameter, value: Any) -> str | None:
    """What is wrong with ``value`` for ``parameter``: no number, outside its range (NaN and infinities are), or not
    whole where it must be; None when nothing is."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return f"{parameter.name}={value!r} is not a number"
    shown = str(value) if isinstance(value, numbers.Integral) else _number(value)  # str: a huge int overflows a float
    if not parameter.low <= value <= parameter.high:  # NaN fails every comparison
        return (f"{parameter.name} must be between {parameter.low:g} and {parameter.high:g} {parameter.unit}, "
                f"found {shown}")
    if parameter.integer and not float(value).is_integer():
        return f"{parameter.name} must be a whole number, found {shown}"
    return None


@dataclass(frozen=True)
class Perturbation:
    """One degradation condition: a kind and the value of every one of its parameters.

    Built by :func:`parse_condition` from a spec item, or directly; either way it is checked here, once.

    Args:
        kind: A name of :data:`KINDS`.
        params: ``(name, value)`` for every parameter of the kind, in the kind's order, defaults included; each value
            a number within the parameter's range (whole where the parameter counts), kept as a float.

    Raises:
        EvaluationError: an unknown kind, parameters missing, unknown or out of order, or a value that is no number,
            out of range or not whole where it must be; the message names the condition, the range and the fix.
    """

    kind: str
    params: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        kind = KINDS.get(self.kind) if isinstance(self.kind, str) else None
        where = f"Perturbation({self.kind!r}, {self.params!r})"
        if kind is None:
            raise _InvalidCondition(where, f"{self.kind!r} is not a kind of degradation; expected one of "
                                           f"{sorted(KINDS)}", f"Write KIND or KIND:NAME=VALUE, {_EXAMPLE}.")
        expected = tuple(p.name for p in kind.parameters)
        try:
            names = tuple(name for name, _ in self.params)
        except (TypeError, ValueError):  # not a sequence of pairs
            names = None
        if names != expected:
            raise _InvalidCondition(where, f"params must give every parameter of '{kind.name}', in this order: "
                                           f"{list(expected)}, as (name, value) pairs",
                                    f"Build it with parse_condition('{kind.example}'), which fills in the defaults.")
        values = dict(self.params)
        missing = [name for name in expected if values[name] is None]
        if missing:
            raise _InvalidCondition(where, f"'{kind.name}' needs {', '.join(missing)}", kind.usage() + ".")
        for parameter in kind.parameters:
            problem = _value_problem(parameter, values[parameter.name])
            if problem is not None:
                raise _InvalidCondition(where, problem, kind.usage() + ".")
        # One type for every value: a condition built with 10 is the one parsed from "10" (equal, one hash).
        object.__setattr__(self, "params", tuple((name, float(values[name])) for name in expected))

    @property
    def name(self) -> str:
        """The condition as a spec item: required parameters and those set away from their default."""
        defaults = {p.name: p.default for p in KINDS[self.kind].parameters}
        shown = [f"{name}={_number(value)}" for name, value in self.params if defaults[name] != value]
        return ":".join([self.kind, *shown])

    @property
    def key(self) -> str:
        """Kind, every parameter and the algorithm version: what seeds and cache folders are keyed on."""
        return f"v{ALGORITHM_VERSION}:" + ":".join([self.kind, *(f"{n}={_number(v)}" for n, v in self.params)])

    @property
    def random(self) -> bool:
        """Whether the condition draws noise or a room response (its result then depends on the seed)."""
        return KINDS[self.kind].random

    def description(self) -> str:
        """Plain words, e.g. ``"white noise, SNR 10 dB"``."""
        return KINDS[self.kind].describe(**dict(self.params))

    def check_sampling_rate(self, sampling_rate: int, argument: str = "--perturb") -> None:
        """Raise when the condition cannot degrade audio at the model's rate (it would change nothing)."""
        values = dict(self.params)
        if self.kind == "resample" and values["rate"] >= sampling_rate:
            raise EvaluationError(
                f"{argument}: {self.name!r} does not lower the rate: the model's audio is {sampling_rate} Hz. "
                f"Use a rate below {sampling_rate}, e.g. 'resample:rate=8000'.")
        if self.kind == "telephone" and sampling_rate < TELEPHONE_RATE:
            raise EvaluationError(f"{argument}: 'telephone' needs audio of at least {TELEPHONE_RATE} Hz; the model's "
                                  f"is {sampling_rate} Hz. Drop 'telephone' from {argument}.")

    def apply(self, wave: np.ndarray, sampling_rate: int, *, seed: int = 0, clip_key: str = "") -> np.ndarray:
        """The degraded clip: float32, as long as ``wave``, at ``sampling_rate``.

        Args:
            wave: A mono clip: a 1-D array of finite samples, at least one. Signed integer PCM (int8, int16,
                int32) is scaled to [-1, 1] as :func:`ser_hf.audio.float_samples` scales it (a decoded file's level).
            sampling_rate: Its rate in Hz.
            seed: The run's seed.
            clip_key: What identifies the clip (its content hash), so each clip gets its own draws.

        Raises:
            EvaluationError: an empty, multi-channel or non-numeric clip, integer samples that are no signed PCM
                (unsigned, 64-bit), one with NaN or infinite samples, or one so loud that the degradation overflows
                float32; the message names ``clip_key``.
        """
        self.check_sampling_rate(sampling_rate)
        wave = self._checked(wave, clip_key)
        rng = perturbation_rng(self, seed, clip_key)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below, in words
            out = KINDS[self.kind].function(wave, sampling_rate, rng, **dict(self.params))
        if not np.isfinite(out).all():  # e.g. samples near float32's limit, overflowing under gain or noise
            raise self._refuse(clip_key, f"gives non-finite samples (peak input {float(np.abs(wave).max()):.3g})",
                               "Scale the clip to [-1, 1] (decoded audio is).")
        return out

    def _refuse(self, clip_key: str, problem: str, fix: str) -> EvaluationError:
        return EvaluationError(f"{self._cannot(clip_key)}: it {problem}. {fix}")

    def _cannot(self, clip_key: str) -> str:
        return f"{self.name!r} cannot degrade " + (f"clip {clip_key!r}" if clip_key else "the clip")

    def _checked(self, wave: np.ndarray, clip_key: str) -> np.ndarray:
        """``wave`` as float32 (integer PCM scaled to full scale 1.0), refused when empty, not mono or not finite: the
        degradations would otherwise fail inside numpy (an FFT of 0 points) or return NaN with only a RuntimeWarning."""
        raw = np.asarray(wave)
        if raw.dtype.kind not in "fiu":
            raise self._refuse(clip_key, f"holds {raw.dtype} values, not audio samples", "Pass a float array.")
        if raw.size == 0:
            raise self._refuse(clip_key, "holds no samples", "Drop the empty clip.")
        if raw.ndim != 1:
            raise self._refuse(clip_key, f"has shape {raw.shape}, not one channel of samples",
                               "Pass a 1-D array (average the channels of a stereo clip).")
        if raw.dtype.kind in "iu":  # PCM: at full scale 1.0, as decoded; unscaled, int16 came out 32768 times too loud
            try:
                return float_samples(raw, "the array")
            except AudioError as err:  # unsigned or 64-bit integers: float_samples says how to convert them
                raise EvaluationError(f"{self._cannot(clip_key)}: {err}") from None
        with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused just below
            samples = raw.astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            raise self._refuse(clip_key, f"holds {bad} of {samples.size} samples that are NaN, infinite or beyond "
                               "float32's range", "Repair or drop the clip.")
        return samples


def perturbation_rng(perturbation: Perturbation, seed: int, clip_key: str) -> np.random.Generator:
    """The generator of one (condition, clip) pair: a hash of the seed, the condition's key and the clip's key."""
    digest = hashlib.sha256(f"{int(seed)}|{perturbation.key}|{clip_key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


# ----------------------------------------------------------------------------- parsing


def _fail(argument: str, item: str, problem: str, fix: str) -> EvaluationError:
    return EvaluationError(f"{argument}: in {item!r}, {problem}. {fix}")


def _value(argument: str, item: str, kind: Kind, pair: str) -> tuple[Parameter, float]:
    name, sep, text = (part.strip() for part in pair.partition("="))
    if not sep:
        raise _fail(argument, item, f"parameter {pair!r} is not NAME=VALUE", kind.usage() + ".")
    parameter = next((p for p in kind.parameters if p.name == name.lower()), None)
    if parameter is None:
        known = [p.name for p in kind.parameters]
        raise _fail(argument, item, f"{name!r} is not a parameter of '{kind.name}' (it has {known})",
                    kind.usage() + ".")
    try:
        value = float(text)
    except ValueError:
        raise _fail(argument, item, f"{name}={text!r} is not a number", kind.usage() + ".") from None
    return parameter, value  # its range is checked by Perturbation, as a condition built directly is


def parse_condition(item: str, argument: str = "--perturb") -> Perturbation:
    """One spec item, ``KIND`` or ``KIND:NAME=VALUE[:NAME=VALUE]``, as a :class:`Perturbation`.

    Raises:
        EvaluationError: an unknown kind or parameter, a value that is not a number or out of range, a
            parameter given twice or missing; the message names ``argument``, the item and the fix. Ranges and
            missing values are :class:`Perturbation`'s own checks, said about the item.
    """
    head, *pairs = item.split(":")
    kind = KINDS.get(head.strip().lower())
    if kind is None:
        if head.strip().lower() == "clean":
            raise _fail(argument, item, "'clean' is not a degradation", "The clean clips are always scored; list only "
                        f"degradations, {_EXAMPLE}.")
        raise _fail(argument, item, f"{head.strip()!r} is not a kind of degradation; expected one of {sorted(KINDS)}",
                    f"Write KIND or KIND:NAME=VALUE, {_EXAMPLE}.")
    values: dict[str, float] = {}
    for pair in pairs:
        parameter, value = _value(argument, item, kind, pair)
        if parameter.name in values:
            raise _fail(argument, item, f"{parameter.name} is given twice", "Keep one value.")
        values[parameter.name] = value
    try:
        return Perturbation(kind.name, tuple((p.name, values.get(p.name, p.default)) for p in kind.parameters))
    except _InvalidCondition as err:  # said about the item the user wrote, not the Perturbation built from it
        raise _fail(argument, item, err.problem, err.fix) from None


def parse_perturbations(text: str | None, argument: str = "--perturb") -> list[Perturbation]:
    """Parse a spec, ``"noise:snr=20,telephone,..."``, into conditions in the order given.

    Args:
        text: The spec (see the module docstring); None or blank gives no conditions.
        argument: The option name quoted in errors.

    Returns:
        The conditions, each once.

    Raises:
        EvaluationError: a malformed item (see :func:`parse_condition`), an empty item or a condition
            listed twice.

    Example:
        ```python
        >>> [c.name for c in parse_perturbations("babble:snr=5:talkers=6, reverb:rt60=0.6:drr=-3")]
        ['babble:snr=5', 'reverb:rt60=0.6:drr=-3']

        ```
    """
    if text is None or not text.strip():
        return []
    conditions: list[Perturbation] = []
    items: dict[str, str] = {}  # condition key -> the item that asked for it
    for item in text.split(","):
        if not item.strip():
            raise EvaluationError(f"{argument}: {text!r} has an empty condition (two commas, or a comma at an end). "
                                  f"Separate conditions with single commas, {_EXAMPLE}.")
        condition = parse_condition(item.strip(), argument)
        if condition.key in items:
            raise EvaluationError(f"{argument}: {condition.name!r} is listed twice in {text!r} (as "
                                  f"{items[condition.key]!r} and {item.strip()!r}, the same values); keep one.")
        items[condition.key] = item.strip()
        conditions.append(condition)
    return conditions


def check_distinct(conditions: Sequence[Perturbation], argument: str = "conditions") -> None:
    """Refuse two conditions with one key: they would share a row of the report and a cache folder, so one of them
    would silently disappear (``argument`` names where they came from)."""
    seen: set[str] = set()
    for condition in conditions:
        if condition.key in seen:
            raise EvaluationError(f"{argument}: {condition.name!r} is listed twice ({condition.key}); each condition "
                                  "is one row of the report. Keep one.")
        seen.add(condition.key)
