"""The contract between the child and the parent (typed, documented once, validated on every dynamic
fixture in the tests): what a trace is, key by key, and what a static
finding's `Diagnostic.dynamic` verdict is.

Why declared records: a trace is written in the child by the drivers (drive_*.py), fitting.py,
loop.py, replays.py, support.py, richer_family.py and the sandbox, and read in the parent by
classify.py, seeds.py, confirmation.py, attribution.py and report.py. It crosses a process boundary
as JSON, so it stays plain data (dicts, lists, numbers, strings) — these TypedDicts say which keys
exist and what they hold, and `problems()` checks a value against them (every key declared, every
declared type held, nested records included), generically from the annotations, so a key added in
one module and not declared here fails the tests (tests/conftest.py sets ELBOLINT_CHECK_TRACES=1,
and report.apply_results then checks every trace and verdict of every dynamic test run).

Numbers: JSON has no NaN/Infinity in the standard, but Python's json module writes and reads them,
and some writers use the strings "nan"/"inf"; `float` accepts all of these (and ints).
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional, TypedDict, Union, get_args, get_origin, get_type_hints

try:  # Python 3.11 has both
    from typing import NotRequired, is_typeddict
except ImportError:  # pragma: no cover
    from typing_extensions import NotRequired, is_typeddict

Number = float  # a float, an int, NaN/inf, or the strings "nan"/"inf"/"-inf"


# ----------------------------------------------------------------------------- pieces of a run
class Watched(TypedDict, total=False):
    """What a watched positive parameter is (watch.py): the finding's own parameter is told by it."""
    parameter: str
    distribution: str
    component: Optional[str]
    variable: Optional[str]
    kind: str  # "scale", "tril-diagonal", "covariance", "probs", ...
    strict: bool


class RerunRecord(TypedDict, total=False):
    """One seed of a counterfactual re-run (fitting._Runner, replays.py)."""
    seed: int
    finite: bool
    final: Optional[Number]
    max_grad_norm: Optional[Number]


class Clipped(TypedDict):
    """ELB110's input: the same seeds with gradients clipped to `clipnorm`."""
    clipnorm: Number
    runs: list[RerunRecord]


class SmallerRate(TypedDict):
    """ELB112's input: the same seeds at `smaller` = `learning_rate` / `factor`."""
    learning_rate: Number
    smaller: Number
    factor: Number
    runs: list[RerunRecord]


class PosteriorScale(TypedDict, total=False):
    """A Keras BNN's posterior spreads per batch, and its prior's (drive_keras.py)."""
    min: list[Optional[Number]]
    mean: list[Optional[Number]]
    prior: Optional[Number]


class VariantRecord(TypedDict, total=False):
    """What a replay changed (variants.py)."""
    seed: int
    clip: Number
    clipped_steps: int
    rate_factor: Number
    rates: list[dict[str, Any]]


class Run(TypedDict, total=False):
    """One run's record (a seed of a fit, a loop's or a Keras fit's steps): the trace's `fit` and
    each entry of `seeds`."""
    seed: int
    loss: list[Number]
    grad_norm: list[Optional[Number]]
    final_estimate: Optional[Number]
    positive: dict[str, list[Number]]  # watched parameter label -> its minimum per step
    watched: dict[str, Watched]
    constrained: list[str]
    none_grad: list[str]
    zero_grad: list[str]
    untracked: list[str]
    no_trainable: bool
    seconds: Number
    logprob_shape: list[int]
    expected_rank: int
    counterfactual: Optional[Clipped]
    smaller_rate: Optional[SmallerRate]
    learning_rate: Optional[Number]
    clipping: dict[str, Number]
    # Keras fits (drive_keras.py): the loss split and the batch arithmetic ELB109 needs
    kl: list[Optional[Number]]
    data: list[Optional[Number]]
    kl_weight: Optional[Number]
    dataset_size: Optional[int]
    batch_size: Optional[int]
    posterior_scale: PosteriorScale
    variant: VariantRecord  # a replay's seed (replays.py)


class Site(TypedDict, total=False):
    """Where a run is in the user's file (sites.py; attribution.py judges findings by it)."""
    kind: str  # "fit", "keras", "loop", "minimize"
    line: Optional[int]
    stack: list[int]
    caller: int  # the outermost user line on the stack, when the run is inside a function of the file
    identity: list[Any]  # [kind, stack when it started]: the same site in another run (site_runs.py)
    optimizer_names: list[str]
    model_names: list[str]
    compile_line: int
    brief: int  # cut short after this many steps: no finding points at the run (loop.py)
    brief_timeout: bool


class Failure(TypedDict, total=False):
    """Why the file stopped: the program's own exception, or the sandbox's reason."""
    kind: str  # "exception", "model", "timeout", "memory", "signal", "exit", "output", "internal", "unavailable"
    message: str
    line: Optional[int]
    exception: str
    output_tail: str
    confirm_only: bool


class Reference(TypedDict, total=False):
    """The reference fit (reference.reference_fit): a default surrogate on the same target."""
    kind: str
    loss: list[Number]
    final_estimate: Optional[Number]
    affine_final_estimate: Optional[Number]
    affine_skipped: str
    affine_error: str
    error: str
    seconds: Number


class RicherSeed(TypedDict, total=False):
    seed: int
    steps: int
    elbo: Number
    se: Number
    mean_field_elbo: Number
    mean_field_se: Number


class RicherFlowSeed(TypedDict, total=False):
    """One seed of ELB111's flow reference and its Gaussian control (the full-rank fitted on as long)."""
    seed: int
    steps: int
    elbo: Number
    se: Number
    gaussian_elbo: Number
    gaussian_se: Number


class RicherFlow(TypedDict, total=False):
    """ELB111's second reference (richer_flow.py): a normalizing flow started from the full-rank's solution."""
    latent: int
    start_elbo: Number
    start_se: Number
    reference: list[RicherFlowSeed]
    steps: int
    step_cap: int
    seeds: int
    layers: int
    hidden: list[int]
    seconds: Number
    skewness: dict[str, Number]
    kurtosis: dict[str, Number]
    spread_ratio: dict[str, Number]
    curvature: list[list[Any]]  # [name, name, corr(z_i, (z_j - mean_j)^2)]
    stopped: Any
    skipped: str
    error: str


class Richer(TypedDict, total=False):
    """ELB111's input (richer_family.py): a full-rank reference started from the user's solution."""
    flow: RicherFlow
    latent: int
    names: list[str]
    user_elbo: Number
    user_se: Number
    start_elbo: Number
    reference: list[RicherSeed]
    steps: int
    step_cap: int
    seeds: int
    seconds: Number
    correlations: list[list[Any]]  # [name, name, correlation]
    spread_ratio: dict[str, Number]
    stopped: Any
    skipped: str
    error: str


class SupportShare(TypedDict, total=False):
    """ELB113's input (support.py): one ELB014 finding's component, its draws outside the support."""
    line: int
    component: Optional[str]
    share: Number
    nan: Number
    min: Optional[Number]
    max: Optional[Number]


class Support(TypedDict, total=False):
    start: list[SupportShare]
    end: list[SupportShare]


class Sampled(TypedDict, total=False):
    """A JointDistribution the `sample` driver sampled (no fit)."""
    model: str
    name: Optional[str]
    line: int
    logprob_shape: list[int]
    batch_shapes: list[list[int]]


class KerasModel(TypedDict, total=False):
    calls: list[str]
    layers: list[str]
    custom_train_step: bool
    approximate_loss: bool


class TimeCut(TypedDict):
    steps: int
    seconds: Number


class _ReplaysRan(TypedDict):
    ran: int
    seconds: Number
    skipped: list[str]


class Replays(_ReplaysRan, total=False):
    """The program's replays (replays.py): how many ran, their time, what was left out and why."""
    fixed_draws: bool  # seed 1 repeated seed 0: the program fixes its own draws, one run is all


class Unreached(TypedDict):
    """A flagged training site no run of the file reached (site_runs.py), and why."""
    kind: str
    first: int
    last: int
    why: str


class SiteRuns(TypedDict):
    """A file run once per flagged training site (process/site_runs.py)."""
    runs: int
    unreached: list[Unreached]


class Trace(TypedDict, total=False):
    """One file's result from the child: one run (`fit`), several fits (`fits`), a failure, or
    `nothing` (why nothing ran)."""
    source: str  # the driver: "fit_surrogate_posterior", "loop", "keras", "probe", "pair", "sample"
    line: Optional[int]
    budget: int
    anchors: dict[str, str]  # "surrogate"/"model"/"optimizer"/"target" -> the user's name
    user_num_steps: Any
    fit: Run
    seeds: list[Run]
    reference: Reference
    richer: Richer
    site: Site
    fit_index: int
    fits: list["Trace"]
    clipping: dict[str, Number]
    support: Support
    replays: Replays
    variant: VariantRecord
    failure: Failure
    nothing: str
    sampled: list[Sampled]
    observable: list[str]
    keras_model: KerasModel
    skipped: list[str]
    stopped_by: str
    stopped_after: str
    fits_not_checked: str
    harness_error: str
    cut_short: list[Site]
    ran_to_end: bool
    time_cut: TimeCut  # a slow loop or Keras fit stopped with what it recorded (loop.TIME_SHARE)
    missing_packages: list[str]
    site_runs: SiteRuns  # the file was run once per flagged training site
    # added by the worker and the sandbox
    seconds: Number
    path: str
    keras: str
    output_tail: str


# ----------------------------------------------------------------------------- the verdict
class Evidence(TypedDict, total=False):
    codes: list[str]  # the dynamic codes that confirm (empty unless confirmed)
    findings: list[dict[str, Any]]  # those findings: code, message, evidence numbers
    keras: str


class Verdict(TypedDict):
    """`Diagnostic.dynamic` of a static finding: what dynamic mode concluded about it, in words
    (`summary`, naming its run) and data."""
    status: Literal["confirmed", "not-reproduced", "unconfirmed", "not-run"]
    summary: str
    evidence: Evidence
    trace: dict[str, Any]  # classify.trace_summary: the run's digest


class Observation(TypedDict):
    """`Diagnostic.dynamic` of a dynamic-only row (an observation no static finding claimed)."""
    status: Literal["observed"]
    evidence: dict[str, Any]
    trace: dict[str, Any]


# ----------------------------------------------------------------------------- checking
def checking() -> bool:
    """Whether traces and verdicts are checked against the contract (tests turn it on)."""
    return os.environ.get("ELBOLINT_CHECK_TRACES", "") not in ("", "0")


def problems(value: Any, kind: Any = Trace, where: str = "trace") -> list[str]:
    """Where `value` breaks the declared record `kind` (empty when it holds)."""
    if kind is Any:
        return []
    if isinstance(kind, str):  # a forward reference ("Trace")
        kind = globals()[kind]
    if is_typeddict(kind):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        hints = get_type_hints(kind)
        found = [f"{where}.{key}: not declared in {kind.__name__}" for key in value if key not in hints]
        found += [f"{where}.{key}: missing" for key in kind.__required_keys__ if key not in value]
        for key, hint in hints.items():
            if key in value:
                found += problems(value[key], hint, f"{where}.{key}")
        return found
    origin = get_origin(kind)
    if origin is NotRequired:
        return problems(value, get_args(kind)[0], where)
    if origin is Union:
        options = get_args(kind)
        if any(not problems(value, option, where) for option in options):
            return []
        return [f"{where}: {value!r:.60} is none of {', '.join(_name(o) for o in options)}"]
    if origin is Literal:
        return [] if value in get_args(kind) else [f"{where}: {value!r} is not one of {get_args(kind)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        (item,) = get_args(kind) or (Any,)
        return [p for i, v in enumerate(value) for p in problems(v, item, f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        _, item = get_args(kind) or (str, Any)
        return [p for k, v in value.items() for p in problems(v, item, f"{where}[{k!r}]")]
    if kind is type(None):
        return [] if value is None else [f"{where}: expected null"]
    if kind is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
            (isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"))
        return [] if ok else [f"{where}: expected a number, got {value!r:.60}"]
    if kind is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: expected an integer"]
    if kind in (str, bool):
        return [] if isinstance(value, kind) else [f"{where}: expected {kind.__name__}, got {type(value).__name__}"]
    return []


def verdict_problems(dynamic: Optional[dict], where: str = "dynamic") -> list[str]:
    """Where a Diagnostic's `dynamic` breaks the declared Verdict/Observation."""
    if dynamic is None:
        return []
    kind = Observation if dynamic.get("status") == "observed" else Verdict
    return problems(dynamic, kind, where)


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
