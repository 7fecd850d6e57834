"""Flax adapter: ``flax.linen.BatchNorm``.

Conventions: ``momentum`` is the decay itself (default 0.99); ε = 1e-5 inside the root;
the running variance is updated with the biased batch variance; channels on any axis
(``axis``, default −1).  Variables: ``params`` {``scale``, ``bias``} and ``batch_stats``
{``mean``, ``var``}.  By default Flax computes the variance as E[x²] − E[x]²
(``use_fast_variance=True``); the ``two_pass`` variant sets ``use_fast_variance=False``.

``flax`` is jitted, as training code usually is; ``flax:eager`` runs the same functions op by
op, so the two compare XLA's compiled batch norm with the eager one.

JAX compiles once per input shape, dtype and configuration: ε and momentum are passed to
the compiled functions as arguments (not baked in as constants), so the many ε values a
property-based run draws reuse one compilation.  Importing this module enables float64 in
JAX (``jax_enable_x64``); without it JAX silently computes float64 cases in float32.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from datamodel.case import Case, CaseData
from reference import Conventions

from .base import FrameworkConventions, Hyper, Inventory, LayerSpec, Variable
from .jaxengine import JaxEngine, _jax
from .snippets import data_block, footer, header


def _linen():
    _jax()
    import flax.linen as nn

    return nn


@cache
def _compiled(axis: int, affine: bool, fast_variance: bool, dtype: str, jit: bool = True):
    """The eval, train-step and gradient functions of one layer configuration, jitted unless ``jit`` is false."""
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

    if not jit:
        return evaluate, train_step, gradients
    return jax.jit(evaluate), jax.jit(train_step), jax.jit(gradients)


def statistics_dtype(dtype: str) -> str:
    """The dtype Flax keeps running statistics in for a layer computing in ``dtype``: at least float32."""
    import jax.numpy as jnp

    _jax()
    return str(jnp.promote_types(dtype, jnp.float32))


class FlaxAdapter(JaxEngine):
    name = "flax"
    variants: ClassVar[dict[str, str]] = {
        "two_pass": "use_fast_variance=False: variance as E[(x − E[x])²] instead of E[x²] − E[x]²",
        "eager": "module.apply called op by op, without jax.jit (the default variant is jitted)",
    }
    slow_variants: ClassVar[dict[str, str]] = {
        "eager": "JAX dispatches every operation on its own: 76 s of a ci run on one core against about 20 s jitted",
    }
    execution_modes: ClassVar[tuple[str, ...]] = ("eager",)

    def version(self) -> str:
        import flax

        return f"{flax.__version__} (jax {_jax().__version__})"

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

    def build(self, spec: LayerSpec):
        return _compiled(spec.axis, spec.affine, self.variant != "two_pass", spec.dtype, jit=self.variant != "eager")

    def framework_defaults(self, layer) -> tuple[float, float]:
        fields = _linen().BatchNorm.__dataclass_fields__  # Flax's own defaults, from nn.BatchNorm's fields
        return fields["epsilon"].default, fields["momentum"].default

    def load_state(self, layer, data: CaseData, spec: LayerSpec) -> dict:
        # Linen creates batch_stats in float32 and updates them in promote_types(dtype, float32)
        # (flax.linen.normalization._compute_stats): a half-precision layer's statistics are
        # float32 in every real model.  Loaded in float16 they would give the first training step
        # a signature the later ones lack, and JAX would compile the step and inference twice.
        # The values are the case's, rounded to its dtype; float32 holds them exactly.
        held = statistics_dtype(spec.dtype)
        variables = {"batch_stats": {"mean": self.tensor(data.running_mean, spec, held),
                                     "var": self.tensor(data.running_var, spec, held)}}  # fmt: skip
        if spec.affine:
            variables["params"] = {"scale": self.tensor(data.gamma, spec), "bias": self.tensor(data.beta, spec)}
        return variables

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        evaluate, train_step, _ = layer
        if not training:
            return evaluate(state, x, hyper.eps), state
        y, stats = train_step(state, x, hyper.eps, hyper.momentum)
        return y, {**state, "batch_stats": stats}

    def running_statistics(self, layer, state):
        return state["batch_stats"]["mean"], state["batch_stats"]["var"]

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        dx, dparams = layer[2](state, x, dy, hyper.eps)
        return dx, dparams.get("scale"), dparams.get("bias")

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

quantities["y_eval"] = layer.apply(variables, put(batches[0]), use_running_average=True)
state, quantities["y_train"], quantities["running_mean"], quantities["running_var"] = variables, [], [], []
for batch in batches:
    y, updates = layer.apply(state, put(batch), use_running_average=False, mutable=["batch_stats"])
    state = {{**state, **updates}}
    quantities["y_train"].append(y)
    quantities["running_mean"].append(updates["batch_stats"]["mean"])
    quantities["running_var"].append(updates["batch_stats"]["var"])
quantities["y_eval_after"] = layer.apply(state, put(batches[0]), use_running_average=True)

def forward(x, params):
    merged = {{**variables, "params": params}} if gamma is not None else variables
    return layer.apply(merged, x, use_running_average=False, mutable=["batch_stats"])[0]

_, pullback = jax.vjp(forward, put(batches[0]), variables.get("params", {{}}))
quantities["dx"], dparams = pullback(put(dy))
if gamma is not None:
    quantities["dgamma"], quantities["dbeta"] = dparams["scale"], dparams["bias"]
""" + footer()
