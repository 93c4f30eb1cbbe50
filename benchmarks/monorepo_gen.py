"""The synthetic monorepo of benchmarks/compare.py: a deterministic tree of plain Python modules with
a few TFP and TensorFlow/Keras modules among them (some with a planted ELB001 pattern), generated from a
seed, so every machine measures the same 10,000 files. Kept apart from compare.py, which measures."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path


WORDS = ("account", "order", "invoice", "user", "session", "metric", "event", "report", "record",
         "batch", "config", "cache", "token", "price", "sample", "feature", "schema", "item", "job",
         "queue", "signal", "route", "query", "ledger", "budget", "region", "vendor", "shipment")
TOP_LEVEL = ("services", "libs", "ml", "tools", "data", "platform", "web", "infra")


def snake(rng: random.Random, parts: int = 2) -> str:
    return "_".join(rng.choice(WORDS) for _ in range(parts))


def camel(rng: random.Random) -> str:
    return "".join(w.capitalize() for w in snake(rng).split("_"))


class Monorepo:
    """Deterministic generator: everything comes from one seeded Random, in a fixed order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.planted = 0

    def write(self, root: Path, files: int) -> int:
        for relative, text in self.files(files):
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return self.planted

    def files(self, total: int):
        """(relative path, source) pairs; __init__.py files count towards the total."""
        packages: list[Path] = []
        written = 0
        names: set[Path] = set()
        while written < total:
            if not packages or (self.rng.random() < 0.09 and total - written > 1):
                package = self.new_package(packages)
                packages.append(package)
                yield package / "__init__.py", self.init_module()
                written += 1
                continue
            package = self.rng.choice(packages[-12:] if self.rng.random() < 0.7 else packages)
            path = package / f"{snake(self.rng)}.py"
            if path in names:
                continue
            names.add(path)
            yield path, self.module()
            written += 1

    def new_package(self, packages: list[Path]) -> Path:
        if not packages or self.rng.random() < 0.1:
            return Path(self.rng.choice(TOP_LEVEL)) / snake(self.rng, 1) / f"pkg{len(packages)}"
        parent = self.rng.choice(packages)
        if len(parent.parts) >= 6:
            parent = parent.parent
        return parent / f"{snake(self.rng, 1)}{len(packages)}"

    def init_module(self) -> str:
        return f'"""The {snake(self.rng)} package."""\n' + ("\n__all__: list[str] = []\n" if self.rng.random() < 0.3 else "")

    def module(self) -> str:
        draw = self.rng.random()
        if draw < 0.055:
            return self.tfp_module()
        if draw < 0.075:
            return self.keras_module()
        return self.plain_module()

    # --- plain Python -------------------------------------------------------------------------
    def plain_module(self) -> str:
        items = min(80, int(self.rng.lognormvariate(1.6, 0.9)) + 1)
        imports: set[str] = {"import logging"}
        body = []
        for _ in range(items):
            template = self.rng.choice(PLAIN_TEMPLATES)
            needs, text = template(self.rng)
            imports |= needs
            body.append(text)
        header = f'"""{snake(self.rng).capitalize().replace("_", " ")} helpers."""\n\n'
        header += "from __future__ import annotations\n\n" + "\n".join(sorted(imports)) + "\n\n"
        header += "logger = logging.getLogger(__name__)\n"
        header += f"DEFAULT_{snake(self.rng, 1).upper()} = {self.rng.randint(1, 500)}\n\n\n"
        return header + "\n\n".join(b.rstrip("\n") + "\n" for b in body)

    # --- TFP ----------------------------------------------------------------------------------
    def tfp_module(self) -> str:
        style = self.rng.choice(TFP_IMPORT_STYLES)
        helpers, needs = [], {"import logging"}
        for _ in range(self.rng.randint(0, 4)):
            imports, text = self.rng.choice(PLAIN_TEMPLATES)(self.rng)
            needs |= imports
            helpers.append(text)
        header = "\n".join(sorted(needs)) + "\n" + style + "\nlogger = logging.getLogger(__name__)\n"
        parts = [f'"""Variational model for {snake(self.rng).replace("_", " ")}."""\n', header]
        parts.append(DATA_BLOCK.format(n=self.rng.choice((50, 100, 200, 500)), seed=self.rng.randint(0, 99)))
        bad = self.rng.random() < 0.35
        variant = self.rng.choice(("inline", "name", "self")) if bad else "good"
        parts.append(SURROGATES[variant].format(cls=camel(self.rng)))
        self.planted += 1 if bad else 0
        parts.append(TRAINING.format(steps=self.rng.choice((100, 200, 500)), lr=self.rng.choice((0.01, 0.05, 0.1))))
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts + helpers)

    def keras_module(self) -> str:
        return KERAS_MODULE.format(units=self.rng.choice((16, 32, 64)), epochs=self.rng.randint(2, 20),
                                   name=snake(self.rng))


def t_group(rng):
    name, key = snake(rng), rng.choice(WORDS)
    return {"import collections"}, textwrap.dedent(f'''\
        def group_{name}(rows: list[dict], key: str = "{key}") -> dict:
            """Group rows by `key`, skipping rows without it."""
            groups: dict = collections.defaultdict(list)
            for row in rows:
                if key not in row:
                    logger.debug("row without %s: %r", key, row)
                    continue
                groups[row[key]].append(row)
            return dict(groups)
        ''')


def t_parse(rng):
    name = snake(rng)
    return {"import json"}, textwrap.dedent(f'''\
        def parse_{name}(payload: str) -> dict:
            """Decode a {name.replace("_", " ")} message and check its fields."""
            data = json.loads(payload)
            missing = [f for f in ("id", "{rng.choice(WORDS)}") if f not in data]
            if missing:
                raise ValueError(f"missing fields: {{missing}}")
            data["id"] = int(data["id"])
            return data
        ''')


def t_stats(rng):
    name = snake(rng)
    return {"import math"}, textwrap.dedent(f'''\
        def {name}_summary(values: list[float]) -> tuple[float, float]:
            """Mean and standard deviation of {name.replace("_", " ")} values."""
            if not values:
                return 0.0, 0.0
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
            return mean, math.sqrt(var)
        ''')


def t_files(rng):
    name = snake(rng)
    return {"import re", "from pathlib import Path"}, textwrap.dedent(f'''\
        _{name.upper()}_RE = re.compile(r"^{rng.choice(WORDS)}-(\\d+)$")


        def find_{name}(root: Path) -> list[str]:
            """Names of the {name.replace("_", " ")} files under `root`."""
            found = []
            for path in sorted(root.glob("**/*.txt")):
                match = _{name.upper()}_RE.match(path.stem)
                if match:
                    found.append(match.group(1))
            return found
        ''')


def t_dataclass(rng):
    cls, fields = camel(rng), rng.sample(WORDS, rng.randint(2, 6))
    lines = "\n".join(f"    {f}: {rng.choice(('int', 'str', 'float', 'bool'))}" for f in fields)
    return {"from dataclasses import dataclass"}, f'''@dataclass(frozen=True)
class {cls}:
    """A {cls} record."""

{lines}

    def describe(self) -> str:
        return f"{cls}({{self.{fields[0]}!r}})"
'''


def t_service(rng):
    cls, methods = camel(rng) + "Service", rng.randint(1, 6)
    body = [f'''class {cls}:
    """Talks to the {rng.choice(WORDS)} backend."""

    def __init__(self, client, retries: int = {rng.randint(1, 5)}) -> None:
        self.client = client
        self.retries = retries
        self._cache: dict = {{}}
''']
    for _ in range(methods):
        method = snake(rng)
        body.append(f'''    def {method}(self, key: str):
        if key in self._cache:
            return self._cache[key]
        for attempt in range(self.retries):
            try:
                value = self.client.get("{method}", key)
            except ConnectionError:
                logger.warning("retry %d for %s", attempt, key)
                continue
            self._cache[key] = value
            return value
        return None
''')
    return set(), "\n".join(body)


def t_async(rng):
    name = snake(rng)
    return {"import asyncio"}, textwrap.dedent(f'''\
        async def poll_{name}(fetch, interval: float = {rng.choice((0.5, 1.0, 5.0))}) -> list:
            """Poll until `fetch` returns nothing new."""
            seen: list = []
            while True:
                batch = await fetch()
                if not batch:
                    return seen
                seen.extend(batch)
                await asyncio.sleep(interval)
        ''')


def t_chain(rng):
    name = snake(rng)
    return {"import itertools"}, textwrap.dedent(f'''\
        def flatten_{name}(nested: list[list[int]], limit: int = {rng.randint(10, 999)}) -> list[int]:
            """Flatten, dedupe and cap a nested list."""
            flat = itertools.chain.from_iterable(nested)
            unique = sorted({{x for x in flat if x >= 0}})
            return [x for x in unique if x < limit]
        ''')


def t_cached(rng):
    name = snake(rng)
    return {"import functools"}, textwrap.dedent(f'''\
        @functools.lru_cache(maxsize=None)
        def {name}_count(n: int) -> int:
            """Number of {name.replace("_", " ")} layouts of size n."""
            if n < 2:
                return 1
            return {name}_count(n - 1) + {name}_count(n - 2)
        ''')


def t_dates(rng):
    name = snake(rng)
    return {"import datetime"}, textwrap.dedent(f'''\
        def {name}_window(day: str, days: int = {rng.randint(1, 30)}):
            """The [start, end) window of `days` days ending on `day`."""
            end = datetime.date.fromisoformat(day) + datetime.timedelta(days=1)
            start = end - datetime.timedelta(days=days)
            return start, end
        ''')


PLAIN_TEMPLATES = (t_group, t_parse, t_stats, t_files, t_dataclass, t_service, t_async, t_chain, t_cached, t_dates)

TFP_IMPORT_STYLES = (
    "import numpy as np\nimport tensorflow as tf\nimport tensorflow_probability as tfp\n\ntfd = tfp.distributions\ntfb = tfp.bijectors",
    "import numpy as np\nimport tensorflow as tf\nimport tensorflow_probability as tfp\nfrom tensorflow_probability import bijectors as tfb\nfrom tensorflow_probability import distributions as tfd",
)

DATA_BLOCK = """rng = np.random.RandomState({seed})
x = np.linspace(-1.0, 1.0, {n}).astype(np.float32)
y = (2.0 * x + 0.5 + rng.normal(0.0, 0.3, size={n})).astype(np.float32)

model = tfd.JointDistributionSequential([
    tfd.Normal(loc=0.0, scale=1.0),
    tfd.Normal(loc=0.0, scale=1.0),
    lambda b, w: tfd.Independent(tfd.Normal(loc=w * x + b, scale=0.3), reinterpreted_batch_ndims=1),
])


def target_log_prob_fn(w, b):
    return model.log_prob([w, b, y])
"""

SURROGATES = {
    "good": """def build_surrogate():
    return tfd.JointDistributionSequential([
        tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())),
        tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())),
    ])
""",
    "inline": """def build_surrogate():
    return tfd.JointDistributionSequential([
        tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0)),
        tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())),
    ])
""",
    "name": """w_loc = tf.Variable(0.0)
w_scale = tf.Variable(0.5, name="w_scale")


def build_surrogate():
    return tfd.JointDistributionSequential([
        tfd.Normal(w_loc, w_scale),
        tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())),
    ])
""",
    "self": """class {cls}Surrogate:
    def __init__(self):
        self.loc = tf.Variable(0.0)
        self.scale = tf.Variable(1.0)

    def weight(self):
        return tfd.Normal(self.loc, self.scale)


def build_surrogate():
    parts = {cls}Surrogate()
    return tfd.JointDistributionSequential([
        parts.weight(),
        tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())),
    ])
""",
}

TRAINING = """def fit():
    surrogate = build_surrogate()
    return tfp.vi.fit_surrogate_posterior(
        target_log_prob_fn,
        surrogate_posterior=surrogate,
        optimizer=tf.optimizers.Adam(learning_rate={lr}, clipnorm=1.0),
        num_steps={steps},
    )
"""

KERAS_MODULE = '''"""Keras baseline for {name}."""

import tensorflow as tf


def build_model(features: int) -> tf.keras.Model:
    model = tf.keras.Sequential([
        tf.keras.layers.Input(shape=(features,)),
        tf.keras.layers.Dense({units}, activation="relu"),
        tf.keras.layers.Dense(1),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
    return model


def train(x, y):
    model = build_model(x.shape[-1])
    model.fit(x, y, epochs={epochs}, batch_size=32, verbose=0)
    return model
'''
