"""What runs inside the sandboxed child, with TensorFlow: the file's execution (execute), the drivers
and their seams (drivers, drive_*, seams, loop, variants), the fits and measurements (fitting, reference,
optimizers, watch, sites, varnames, richer_family, support_draws, targets) and whose failure an
exception is (failures). Its only output is a trace, declared in elbolint/dynamic/verdicts/contract.py."""
