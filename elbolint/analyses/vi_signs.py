"""The vocabulary of signs of variational inference that VIContext and ModelKinds both read.

Why a module of its own: which TFP names, keywords and names of values are a sign of VI (a KL
layer, a `tfp.experimental.nn` variational layer, a variational layer's `kl_weight=` knob, a KL
divergence call, a name that says "elbo") is knowledge of TFP, shared by the file-level answer
(vi_context.py) and the model-level one (model_kinds.py); it decides nothing by itself.
"""

from __future__ import annotations

import re

import libcst as cst

from elbolint.names import TFD, TFP, TFPL, names_in
from elbolint.resolver import Resolver
from elbolint.rules._tfp import VARIATIONAL_LAYERS
from elbolint.walk import visit

#: A VAE's KL layers.
KL_LAYERS = names_in(TFPL, "KLDivergenceAddLoss", "KLDivergenceRegularizer")
#: `tfd.kl_divergence` (also reached as a method: see `is_kl`).
KL_FUNCTIONS = names_in(TFD, "kl_divergence")
#: Layers whose model is variational: the variational layers and the variational GP layer.
VI_MODEL_LAYERS = VARIATIONAL_LAYERS | names_in(TFPL, "VariationalGaussianProcess")
#: `tfp.experimental.nn` (`tfn`): its variational layers (their KL is the layer's `extra_loss` /
#: `tfn.losses.compute_extra_loss(...)`), matched by the last part of the name because the
#: private modules (`tfn.affine_layers.AffineVariationalFlipout`) are not flattened; and its
#: `Sequential`, read as Keras' is.
_TFN = f"{TFP}.experimental.nn."
_TFN_VARIATIONAL_LAYERS = frozenset({
    "AffineVariationalFlipout", "AffineVariationalReparameterization", "AffineVariationalReparameterizationLocal",
    "ConvolutionVariationalFlipout", "ConvolutionVariationalReparameterization",
    "ConvolutionVariationalFlipoutV2", "ConvolutionVariationalReparameterizationV2",
    "ConvolutionTransposeVariationalFlipout", "ConvolutionTransposeVariationalReparameterization",
    "VariationalLayer",
})
TFN_SEQUENTIAL = frozenset({f"{_TFN}Sequential", f"{_TFN}layers.Sequential"})


def tfn_variational(names: frozenset) -> bool:
    """Some of `names` is a `tfp.experimental.nn` variational layer."""
    return any(n.startswith(_TFN) and n.rsplit(".", 1)[-1] in _TFN_VARIATIONAL_LAYERS for n in names)


def any_call(node: cst.CSTNode, predicate) -> bool:
    """Whether some call inside `node` satisfies `predicate`."""
    found: list[cst.Call] = []

    class _Finder(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if not found and predicate(call):
                found.append(call)

    visit(node, _Finder())
    return bool(found)


def mentions(resolver: Resolver, node: cst.CSTNode, names: frozenset[str]) -> bool:
    """Some call inside `node` is one of `names`."""
    return any_call(node, lambda call: not resolver.call_names(call).isdisjoint(names))


def is_kl(resolver: Resolver, call: cst.Call) -> bool:
    """`tfd.kl_divergence(q, p)`, or `q.kl_divergence(p)` on an object no import names (a distribution)."""
    names = resolver.call_names(call)
    return not names.isdisjoint(KL_FUNCTIONS) or (
        not names and isinstance(call.func, cst.Attribute) and call.func.attr.value == "kl_divergence")


#: Keyword arguments that only a variational layer (or a helper building one) takes.
_VI_KEYWORDS = frozenset({
    "kl_weight", "kl_use_exact", "make_posterior_fn", "make_prior_fn", "kernel_posterior_fn",
    "kernel_divergence_fn", "bias_divergence_fn", "kernel_prior_fn", "posterior_fn",
})
#: `posterior=` alone is too common a word; with `prior=` next to it, it is a variational layer's pair.
_VI_KEYWORD_PAIR = frozenset({"posterior", "prior"})
_POSTERIOR_KEYWORD = re.compile(r"(kernel_|bias_|make_)?posterior_")


#: "elbo" as a word of a name (`neg_elbo`, `elbo_loss`, `negativeELBO`, `nelbo`), not inside another
#: word (`elbolint_probe`, `elbow`).
_ELBO_WORDS = frozenset({"elbo", "elbos", "nelbo", "negelbo"})
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def says_elbo(name: str) -> bool:
    """`name` has "elbo" as one of its words (see `_ELBO_WORDS`)."""
    return any(word.lower() in _ELBO_WORDS for word in _NAME_WORDS.findall(name))


def vi_keywords(node: cst.Call) -> bool:
    """A variational layer's knobs: `kl_weight=`, `make_posterior_fn=`, `posterior=` with `prior=`,
    or a `posterior_*` / `kernel_posterior_*` / `bias_posterior_*` keyword (`kernel_posterior_scale_mean=`
    of TFP's Bayesian ResNet; not `class_posterior_fn=` of a classification dataset). Not any
    `kl_*` keyword: reinforcement learning has `kl_coeff=` / `kl_target=` without VI."""
    keywords = {arg.keyword.value for arg in node.args if arg.keyword is not None}
    return (not keywords.isdisjoint(_VI_KEYWORDS) or _VI_KEYWORD_PAIR <= keywords
            or any(_POSTERIOR_KEYWORD.match(k) for k in keywords))
