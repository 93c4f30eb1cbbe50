"""Dynamic-mode settings: `[tool.elbolint.dynamic]` merged with the command line, validated strictly.

Why a module of its own: the CLI, the worker and the classifier all need the same numbers, and a
typo in a threshold must be a one-line configuration error (exit 2), never a silently ignored key.

```toml
[tool.elbolint.dynamic]
steps = 200                    # optimisation steps per model when the file states none (--dynamic-steps)
max-steps = 1000               # a fit's own num_steps is followed up to max(steps, max-steps)
seeds = 4                      # each fit runs from the same initial values with this many seeds
max-fits = 6                   # fit_surrogate_posterior calls checked per file (each one its own result)
timeout = 60.0                 # wall-clock seconds per file (--dynamic-timeout)
memory-mib = 4096              # address-space cap per file, MiB (--dynamic-memory)
output-limit-kib = 1024        # stdout+stderr a model may write before it is stopped
jobs = 0                       # parallel workers (-j/--jobs); 0 = min(2, CPUs, files)
scope = "flagged"              # or "all" (--dynamic=all)
probe = "elbolint_probe"       # name of the probe function
reference = true               # also fit a reference surrogate (needed by ELB102/ELB108)
python = "/path/to/python"     # interpreter of the user's environment (--python)
# classifier thresholds (see elbolint.dynamic.verdicts.classify.THRESHOLDS)
huge-initial-loss-ratio = 100.0
exploding-gradient-norm = 1000.0
diverging-rise = 0.5
diverging-min-rise = 10.0
elbo-gap-ratio = 0.5
elbo-gap-min = 10.0
kl-dominance-ratio = 10.0      # ELB109: median KL / data term of a Keras fit's batches
kl-dominance-min-kl = 10.0     # ELB109: and the median KL is at least this many nats
kl-dominance-min-weight-n = 2.0  # ELB109: and KL weight x N >= this (a KL weighted 1/N never fires)
kl-dominance-data-floor = 0.001  # ELB109: smallest data term the ratio divides by
restrictive-gap-min = 1.0      # ELB111: a full-rank reference must gain more nats than this
restrictive-gap-se = 6.0       # ELB111: ... and more than this many standard errors of the gain
restrictive-spread-min = 1.5   # ELB111: ... and some latent's spread is this many times too narrow
restrictive-gap-strong = 2.5   # ELB111: ... unless the gain is at least this, whatever the spreads
```
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from elbolint.dynamic.verdicts.classify import THRESHOLDS


@dataclass
class DynamicSettings:
    steps: int = 200
    max_steps: int = 1000  # cap on following a fit's own num_steps (see fitting.budget_for)
    seeds: int = 4  # seeds per fit, each from the same initial values (see seeds.py)
    max_fits: int = 6  # fit_surrogate_posterior calls checked per file (see drive_fit.py)
    timeout: float = 60.0
    memory_mib: int = 4096
    output_limit_kib: int = 1024
    jobs: int = 0  # 0: automatic, min(2, CPUs, files)
    scope: str = "flagged"
    probe: str = "elbolint_probe"
    reference: bool = True
    python: str = field(default_factory=lambda: sys.executable)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_SIMPLE = {  # config key -> (attribute, type)
    "steps": ("steps", int),
    "max-steps": ("max_steps", int),
    "seeds": ("seeds", int),
    "max-fits": ("max_fits", int),
    "timeout": ("timeout", float),
    "memory-mib": ("memory_mib", int),
    "output-limit-kib": ("output_limit_kib", int),
    "jobs": ("jobs", int),
    "scope": ("scope", str),
    "probe": ("probe", str),
    "reference": ("reference", bool),
    "python": ("python", str),
}


def known_keys() -> list[str]:
    return sorted(set(_SIMPLE) | {k.replace("_", "-") for k in THRESHOLDS})


def build_settings(table: Mapping[str, Any], cli: Mapping[str, Any]) -> DynamicSettings:
    """Config table first, then command-line values (which win). Raises ConfigError."""
    from elbolint.config import ConfigError

    settings = DynamicSettings()
    where = "[tool.elbolint.dynamic]"
    thresholds = {k.replace("_", "-"): k for k in THRESHOLDS}
    for key, value in table.items():
        if key in _SIMPLE:
            attribute, kind = _SIMPLE[key]
            setattr(settings, attribute, _typed(value, kind, f"{where}.{key}", ConfigError))
        elif key in thresholds:
            settings.thresholds[thresholds[key]] = _typed(value, float, f"{where}.{key}", ConfigError)
        else:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known_keys())})")
    for key, value in cli.items():
        if key == "python":
            value = str(value)
        setattr(settings, key, value)
    if settings.scope not in ("flagged", "all"):
        raise ConfigError(f"{where}.scope must be \"flagged\" or \"all\", got {settings.scope!r}")
    if settings.steps < 1 or settings.timeout <= 0 or settings.memory_mib < 64 or settings.jobs < 0:
        raise ConfigError(f"{where}: steps and timeout must be positive, jobs >= 0 and memory-mib >= 64")
    if settings.max_steps < 1 or settings.seeds < 1 or settings.max_fits < 1:
        raise ConfigError(f"{where}: max-steps, seeds and max-fits must be positive")
    if settings.output_limit_kib < 1:
        raise ConfigError(f"{where}.output-limit-kib must be positive")
    if not settings.probe.isidentifier():
        raise ConfigError(f"{where}.probe must be a Python identifier, got {settings.probe!r}")
    return settings


def _typed(value, kind, where, error):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise error(f"{where} must be {kind.__name__}, got {value!r}")
    return value
