"""The pathology codes dynamic mode reports. Codes are fixed so `noqa` comments and docs stay stable."""

from elbolint.diagnostics import Code, Severity

PATHOLOGIES = (
    Code("ELB100", "dynamic-run-failed", Severity.ERROR, "The file or model could not be executed."),
    Code("ELB101", "nan-loss", Severity.ERROR, "The loss became NaN or Inf."),
    Code("ELB102", "huge-initial-loss", Severity.WARNING,
         "The initial loss is orders of magnitude above a reference surrogate's initial loss."),
    Code("ELB103", "diverging-loss", Severity.WARNING, "The loss rises over the budget."),
    Code("ELB104", "nonpositive-scale", Severity.ERROR, "A positive-only parameter reached <= 0."),
    Code("ELB105", "untrained-variable", Severity.ERROR, "A surrogate variable gets no gradient."),
    Code("ELB106", "log-prob-shape", Severity.ERROR, "The model's log_prob of one joint sample is not a scalar."),
    Code("ELB107", "exploding-gradient", Severity.WARNING, "The global gradient norm is huge or not finite."),
    Code("ELB108", "elbo-gap", Severity.WARNING,
         "After the budget the surrogate is far worse than a reference surrogate."),
    Code("ELB109", "kl-dominates-loss", Severity.WARNING,
         "The KL term outweighs the data term many times over in every batch of a Keras fit."),
    Code("ELB110", "clipping-prevents-divergence", Severity.WARNING,
         "Re-run with gradient clipping, the same seeds stay finite or end clearly better."),
    Code("ELB111", "restrictive-family", Severity.WARNING,
         "A full-rank Gaussian or a normalizing flow started from the fitted surrogate gains ELBO clearly "
         "beyond noise."),
    Code("ELB112", "smaller-rate-prevents-divergence", Severity.WARNING,
         "Re-run at a 10x smaller learning rate, the same seeds stay finite or end clearly better."),
    Code("ELB113", "samples-outside-support", Severity.ERROR,
         "Surrogate draws of a component fall outside its prior's support."),
)

#: Codes observed only by re-running a fit with the fix a rule suggests (a counterfactual). Only the
#: `fit` driver re-runs fits; where it did, a rule that lists such a code is confirmed by it alone (a
#: NaN the fix does not prevent is another finding's evidence), elsewhere by its other codes
#: (see confirmation.policy and report._verdict).
COUNTERFACTUAL = frozenset({"ELB110", "ELB112"})

#: Where each counterfactual's re-runs are in a fit's trace (its first seed's record): ELB110 the
#: clipped re-run (fitting._Runner._clipped_runs), ELB112 the 10x smaller rate (_smaller_rate_runs).
COUNTERFACTUAL_KEYS = {"ELB110": "counterfactual", "ELB112": "smaller_rate"}
