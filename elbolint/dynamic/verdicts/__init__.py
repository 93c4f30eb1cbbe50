"""The judgement, pure Python (no TensorFlow): the codes (pathologies), the trace contract, the
classifier (classify), several seeds and counterfactuals (seeds), what confirms each static finding
(confirmation), ELB014's support checks (support) and ELB111's decision (restrictive)."""
