"""elbolint: a linter for TensorFlow Probability variational inference.

Static mode parses files with LibCST and never imports them; dynamic mode (opt-in) runs
flagged models briefly in a sandboxed child process to confirm the findings.
"""

__version__ = "0.1.0"
