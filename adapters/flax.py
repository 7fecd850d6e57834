"""Flax adapter: ``flax.linen.BatchNorm``.

Conventions: ``momentum`` is the decay itself (default 0.99); ε = 1e-5 inside the root;
the running variance is updated with the biased batch variance; channels on any axis
(``axis``, default −1).  Variables: ``params`` {``scale``, ``bias``} and ``batch_stats``
{``mean``, ``var``}.  By default Flax computes the variance as E[x²] − E[x]²
(``use_fast_variance=True``); the ``two_pass`` variant sets ``use_fast_variance=False``.

JAX compiles once per input shape, dtype and configuration: ε and momentum are passed to
the compiled functions as arguments (not baked in as constants), so the many ε values a
property-based run draws reuse one compilation.  Importing this module enables float64 in
JAX (``jax_enable_x64``); without it JAX silently computes float64 cases in float32.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData
from reference import DTYPES, Conventions

from .base import Adapter, Capabilities, FrameworkConventions, Inventory, Settings, Variable
from .snippets import data_block, header


@cache
def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _linen():
    _jax()
    import flax.linen as nn

    return nn


@cache
def _compiled(axis: int, affine: bool, fast_variance: bool, dtype: str):
    """The jitted eval, train-step and gradient functions of one layer configuration."""
    jax = _jax()
    nn = _linen()
    import jax.numpy as jnp

    def module(eps, momentum):
        return nn.BatchNorm(
            axis=axis, epsilon=eps, momentum=momentum, use_bias=affine, use_scale=affine,
            use_fast_variance=fast_variance, dtype=jnp.dtype(dtype), param_dtype=jnp.dtype(dtype),
        )  # fmt: skip

    def evaluate(variables, x, eps):
        return module(eps, 0.0).apply(variables, x, use_running_average=True)

    def train_step(variables, x, eps, momentum):
        y, updates = module(eps, momentum).apply(variables, x, use_running_average=False, mutable=["batch_stats"])
        return y, updates["batch_stats"]

    def gradients(variables, x, dy, eps):
        def forward(x, params):
            merged = {**variables, "params": params} if affine else variables
            return module(eps, 0.5).apply(merged, x, use_running_average=False, mutable=["batch_stats"])[0]

        _, pullback = jax.vjp(forward, x, variables.get("params", {}))
        return pullback(dy)

    return jax.jit(evaluate), jax.jit(train_step), jax.jit(gradients)


class FlaxAdapter(Adapter):
    name = "flax"
    variants: ClassVar[dict[str, str]] = {"two_pass": "use_fast_variance=False: variance as E[(x − E[x])²] instead of E[x²] − E[x]²"}

    def version(self) -> str:
        import flax

        return f"{flax.__version__} (jax {_jax().__version__})"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ranks=frozenset({2, 3, 4, 5}),
            dtypes=frozenset(DTYPES),
            devices=frozenset({"cpu", "gpu"}),
            any_channel_axis=True,
            affine_off=True,
            cumulative=False,
        )

    @property
    def conventions(self) -> FrameworkConventions:
        return FrameworkConventions(
            momentum_name="momentum",
            momentum_form="old_weight",
            momentum_default=0.99,
            eps_default=1e-5,
            default_channel_axis=-1,
            reference=Conventions(eps_placement="inside", running_variance="biased", averaging="ema"),
            parameter_names={
                "scale": "params/scale",
                "offset": "params/bias",
                "running_mean": "batch_stats/mean",
                "running_variance": "batch_stats/var",
            },
            variance_algorithm="two_pass" if self.variant == "two_pass" else "fast",
        )

    def available_devices(self) -> frozenset[str]:
        try:
            return frozenset({"cpu", "gpu"}) if _jax().devices("gpu") else frozenset({"cpu"})
        except RuntimeError:
            return frozenset({"cpu"})

    # -- translation ----------------------------------------------------------------
    @staticmethod
    def _framework_defaults() -> tuple[float, float]:
        """Flax's own ε and momentum defaults, read from ``nn.BatchNorm``'s fields."""
        fields = _linen().BatchNorm.__dataclass_fields__
        return fields["epsilon"].default, fields["momentum"].default

    def _eps(self, settings: Settings) -> float:
        return settings.eps if settings.eps_given else self._framework_defaults()[0]

    def _momentum(self, settings: Settings) -> float:
        return settings.momentum if settings.momentum_given else self._framework_defaults()[1]

    def _functions(self, case: Case):
        return _compiled(case.layout.axis, case.affine, self.variant != "two_pass", case.dtype)

    def _put(self, array: np.ndarray, case: Case):
        jax = _jax()
        import jax.numpy as jnp

        device = jax.devices("gpu" if case.device == "gpu" else "cpu")[0]
        return jax.device_put(jnp.asarray(array, dtype=jnp.float64).astype(case.dtype), device)

    def _variables(self, case: Case, data: CaseData) -> dict:
        variables = {"batch_stats": {"mean": self._put(data.running_mean, case), "var": self._put(data.running_var, case)}}
        if case.affine:
            variables["params"] = {"scale": self._put(data.gamma, case), "bias": self._put(data.beta, case)}
        return variables

    @staticmethod
    def _numpy(value) -> np.ndarray:
        return np.asarray(value).astype(np.float64)

    # -- the protocol -------------------------------------------------------------------
    def evaluate(self, case: Case, data: CaseData, settings: Settings) -> np.ndarray:
        evaluate, _, _ = self._functions(case)
        return self._numpy(evaluate(self._variables(case, data), self._put(data.batches[0], case), self._eps(settings)))

    def train(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        evaluate, train_step, _ = self._functions(case)
        variables = self._variables(case, data)
        outputs, means, variances = [], [], []
        for batch in data.batches:
            y, stats = train_step(variables, self._put(batch, case), self._eps(settings), self._momentum(settings))
            variables = {**variables, "batch_stats": stats}
            outputs.append(self._numpy(y))
            means.append(self._numpy(stats["mean"]))
            variances.append(self._numpy(stats["var"]))
        after = self._numpy(evaluate(variables, self._put(data.batches[0], case), self._eps(settings)))
        return {
            "y_train": np.stack(outputs),
            "running_mean": np.stack(means),
            "running_var": np.stack(variances),
            "y_eval_after": after,
        }

    def gradients(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        _, _, gradients = self._functions(case)
        dx, dparams = gradients(
            self._variables(case, data), self._put(data.batches[0], case), self._put(data.dy, case), self._eps(settings)
        )
        result = {"dx": self._numpy(dx)}
        if case.affine:
            result.update(dgamma=self._numpy(dparams["scale"]), dbeta=self._numpy(dparams["bias"]))
        return result

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        jax = _jax()
        nn = _linen()
        import jax.numpy as jnp

        layer = nn.BatchNorm(use_running_average=False, axis=channel_axis, use_fast_variance=self.variant != "two_pass")
        variables = layer.init(jax.random.PRNGKey(0), jnp.zeros(shape, dtype=dtype))
        roles = {v: k for k, v in self.conventions.parameter_names.items()}
        found = []
        totals: dict[str, int] = {}
        for collection, leaves in variables.items():
            for leaf_name, leaf in leaves.items():
                path = f"{collection}/{leaf_name}"
                found.append(Variable(path, roles.get(path, "other"), tuple(leaf.shape), str(leaf.dtype), collection == "params"))
                totals[collection] = totals.get(collection, 0) + int(leaf.size)
        trainable = totals.get("params", 0)
        total = sum(totals.values())
        return Inventory(
            variables=tuple(found),
            trainable_count=trainable,
            non_trainable_count=total - trainable,
            total_count=total,
            reported={f"sum of {name!r} leaf sizes": count for name, count in totals.items()},
        )

    def device_info(self) -> dict[str, str]:
        jax = _jax()
        return {**super().device_info(), "backend": jax.default_backend(), "devices": ", ".join(str(d) for d in jax.devices())}

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        platform = "gpu" if case.device == "gpu" else "cpu"
        kwargs = (f"momentum={settings.momentum!r}, " if settings.momentum_given else "") + (
            f"epsilon={settings.eps!r}, " if settings.eps_given else ""
        )
        return header(case, "flax") + f"""import jax

jax.config.update("jax_enable_x64", True)  # float64 cases need it; float32 stays float32
import flax.linen as nn
import jax.numpy as jnp

{data_block(case.materialize())}
device = jax.devices("{platform}")[0]
def put(a):
    return jax.device_put(jnp.asarray(a, dtype=jnp.float64).astype("{case.dtype}"), device)

layer = nn.BatchNorm(axis={case.layout.axis}, {kwargs}use_bias={case.affine},
                     use_scale={case.affine}, use_fast_variance={self.variant != "two_pass"}, dtype="{case.dtype}",
                     param_dtype="{case.dtype}")
variables = {{"batch_stats": {{"mean": put(running_mean), "var": put(running_var)}}}}
if gamma is not None:
    variables["params"] = {{"scale": put(gamma), "bias": put(beta)}}

print("y_eval", np.asarray(layer.apply(variables, put(batches[0]), use_running_average=True), dtype=np.float64))
state = variables
for step, batch in enumerate(batches):
    y, updates = layer.apply(state, put(batch), use_running_average=False, mutable=["batch_stats"])
    state = {{**state, **updates}}
    print("y_train", step, np.asarray(y, dtype=np.float64), "batch_stats", jax.tree_util.tree_map(np.asarray, updates))

def forward(x, params):
    merged = {{**variables, "params": params}} if gamma is not None else variables
    return layer.apply(merged, x, use_running_average=False, mutable=["batch_stats"])[0]

_, pullback = jax.vjp(forward, put(batches[0]), variables.get("params", {{}}))
dx, dparams = pullback(put(dy))
print("dx", np.asarray(dx, dtype=np.float64), "dparams", jax.tree_util.tree_map(np.asarray, dparams))
"""
