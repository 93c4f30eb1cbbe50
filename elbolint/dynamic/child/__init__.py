"""What runs inside the sandboxed child, with TensorFlow: the file's execution (execute), the drivers
and their seams (drivers, drive_*, keras_model, seams, loop, variants), the fits and measurements (fitting,
fit_runner, reference, optimizers, watch, sites, varnames, richer_family, surrogate_family, richer_measure,
support_draws, targets) and whose failure an
exception is (failures). Its only output is a trace, declared in elbolint/dynamic/verdicts/contract.py."""
