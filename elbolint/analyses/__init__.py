"""The file analyses (see elbolint/analysis.py for how the engine runs them and rules ask them).

- `optimizer_roles.OptimizerRoles`: which optimizers of the file drive variational inference and
  which are clipped by hand (asked by ELB003, ELB009); it carries `vi_context.VIContext`, whether
  the file, a training site or a Keras model does VI at all.
- `training.Training`: where the file trains (optimizers applied, `minimize`, `tfp.vi` fits, Keras
  fits, manual `assign_sub` updates), and whether a distribution's raw parameter can ever reach one
  of those sites (asked by the rules about a trained parameter: ELB001, ELB002, ELB007, ELB008,
  ELB013).
"""
