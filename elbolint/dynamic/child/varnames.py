"""Name trainable variables the way the user wrote them, for evidence strings.

Why: TensorFlow names a `tf.Variable(0.5)` `Variable:0` (the next one `Variable_1:0`), which says
nothing about which line of the user's file is at fault. The user knows the variable by the Python
name it is bound to (`raw_scale = tf.Variable(0.5)`), by the distribution parameter it feeds
(`surrogate_posterior.scale`), or by the `name=` they gave it. In that order of preference; the TF name
is the last resort. Only plain attribute lookups are used (no user code runs).
"""

from __future__ import annotations

import re
import types
from typing import Any, Iterable, Mapping

_DEFAULT_NAME = re.compile(r"^Variable(_\d+)?$")
_MAX_DEPTH = 4


def variable_labels(variables: Iterable, scopes: Iterable[Mapping[str, Any]]) -> list[str]:
    """A label per variable: its Python name, else `dist.param` path, else `name=`, else the TF name."""
    direct, paths = name_index(scopes)
    return [direct.get(id(v)) or paths.get(id(v)) or tf_name(v) for v in variables]


def given_name(variable, scopes: Iterable[Mapping[str, Any]]) -> str | None:
    """The Python name or explicit `name=` of one variable (never a path or a default TF name)."""
    direct, _ = name_index(scopes)
    if id(variable) in direct:
        return direct[id(variable)]
    name = tf_name(variable)
    return None if _DEFAULT_NAME.match(name.split(":")[0]) else name


def tf_name(variable) -> str:
    """`name=` without the `:0` suffix; a default name (`Variable:0`) is kept as TensorFlow wrote it."""
    name = str(getattr(variable, "name", "") or "?")
    base = name[:-2] if name.endswith(":0") else name
    return name if _DEFAULT_NAME.match(base) else base


def name_index(scopes: Iterable[Mapping[str, Any]]) -> tuple[dict[int, str], dict[int, str]]:
    """({id(variable): bound name}, {id(variable): `distribution.parameter` path}); first scope wins."""
    direct: dict[int, str] = {}
    paths: dict[int, str] = {}
    for scope in scopes:
        for name, value in list(scope.items()):
            if name.startswith("__") or isinstance(value, (type, types.ModuleType, types.FunctionType)):
                continue
            variable = underlying(value)
            if variable is not None:
                direct.setdefault(id(variable), name)
            else:
                _walk(value, name, paths, 0)
    return direct, paths


def underlying(value):
    """The tf.Variable itself, or the one a TransformedVariable/DeferredTensor transforms; else None."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return None
    if isinstance(value, tf.Variable):
        return value
    inner = getattr(value, "pretransformed_input", None)
    if inner is not None and isinstance(inner, tf.Variable) and _is_deferred(value):
        return inner
    return None


def _is_deferred(value) -> bool:
    return any(cls.__name__ == "DeferredTensor" for cls in type(value).__mro__)


def _walk(value, path: str, paths: dict[int, str], depth: int) -> None:
    """Distribution parameters (and nested distributions, joint-distribution models) down to variables."""
    if depth > _MAX_DEPTH:
        return
    variable = underlying(value)
    if variable is not None:
        paths.setdefault(id(variable), path)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", paths, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}[{key!r}]", paths, depth + 1)
    elif _is_distribution(value):
        for key, item in (getattr(value, "parameters", None) or {}).items():
            # a joint distribution's `model` is its list/dict of components: index it directly
            _walk(item, path if key == "model" else f"{path}.{key}", paths, depth + 1)


def _is_distribution(value) -> bool:
    return any(cls.__name__ == "Distribution" and cls.__module__.startswith("tensorflow_probability")
               for cls in type(value).__mro__)
