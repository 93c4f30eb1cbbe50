"""The process plumbing between elbolint and the user's code: the worker (`python -m
elbolint.dynamic.process.worker`, imports TensorFlow once, forks a sandboxed child per file, see
elbolint/sandbox.py) and the replays it runs (a loop's or Keras fit's program again, with other seeds
or a finding's fix)."""
