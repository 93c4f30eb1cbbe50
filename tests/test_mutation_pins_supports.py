"""ELB014 (a surrogate whose support is wider than its prior's) behaviour that the fixtures pass over:
a prior scoring the sample by keyword (`log_prob(value=theta)`), a surrogate wrapped in
`tfd.BatchReshape`, and which side of an interval prior is reported when its upper bound sits exactly
at the distance the rule counts as unreachable.

Why: the mutation score of tools/mutation.py counts a changed condition no test notices as a
survivor. Each case lints a hand-written target and asserts the exact ELB014 finding (line, and the
message part the case is about), so losing the keyword, the wrapper or the boundary fails a test.
"""

from __future__ import annotations

from conftest import lint
from elbolint.config import Config

HAND = '''import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors


def target_log_prob_fn(theta):
    return {prior}.log_prob({value})


surrogate = {surrogate}
losses = tfp.vi.fit_surrogate_posterior(
    target_log_prob_fn, surrogate, optimizer=tf.optimizers.Adam(0.01, clipnorm=1.0), num_steps=100)
'''
SURROGATE_LINE = 12
NORMAL = "tfd.Normal(tf.Variable(1.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))"
REAL_LINE = "surrogate component 'theta' is tfd.Normal, supported on the whole real line, but its prior "


def messages(tmp_path, prior: str = "tfd.Gamma(2.0, 0.5)", value: str = "theta", surrogate: str = NORMAL
             ) -> list[tuple[int, str]]:
    path = tmp_path / "fit.py"
    path.write_text(HAND.format(prior=prior, value=value, surrogate=surrogate), encoding="utf-8")
    return [(d.line, d.message) for d in lint(path, Config().enabled_codes() | {"ELB014"}) if d.code == "ELB014"]


def test_a_prior_scoring_the_sample_by_keyword_is_matched(tmp_path):
    for value in ("theta", "value=theta"):
        ((line, message),) = messages(tmp_path, value=value)
        assert line == SURROGATE_LINE
        assert message.startswith(REAL_LINE + "tfd.Gamma has density only on positive values (0, inf)"), value


def test_a_batch_reshaped_surrogate_has_the_support_of_what_it_wraps(tmp_path):
    for surrogate in (f"tfd.BatchReshape({NORMAL}, [1])", f"tfd.BatchReshape({NORMAL}, batch_shape=[1])",
                      f"tfd.Sample({NORMAL}, 1)", f"tfd.Independent({NORMAL}, 0)"):
        ((line, message),) = messages(tmp_path, surrogate=surrogate)
        assert (line, message.startswith(REAL_LINE)) == (SURROGATE_LINE, True), surrogate


def test_an_upper_bound_at_minus_the_unreachable_distance_is_still_a_bound(tmp_path):
    """On (-5000, -1000) the far lower bound counts as -inf only when the other bound is nearer to 0
    than 1000: at exactly -1000 it is not, so the samples below -5000 are the finding."""
    ((line, message),) = messages(tmp_path, prior="tfd.Uniform(-5000.0, -1000.0)")
    assert line == SURROGATE_LINE
    assert "log_prob is -inf at the surrogate's samples below -5000," in message
    ((line, message),) = messages(tmp_path, prior="tfd.Uniform(-5000.0, -999.0)")
    assert "log_prob is -inf at the surrogate's samples above -999," in message
