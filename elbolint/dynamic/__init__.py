"""Dynamic mode: runs flagged models briefly in sandboxed child processes to confirm findings."""

from __future__ import annotations


def run_dynamic(results, config, settings, *, enabled, show_progress=True):
    """Run the models of `results` and return the dynamic-only diagnostics (see issue 4)."""
    from elbolint.config import ConfigError

    raise ConfigError("dynamic mode is not available in this build yet")
