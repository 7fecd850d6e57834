"""Flax NNX adapter: ``flax.nnx.BatchNorm``.

NNX is Flax's object-style API: the layer is a mutable module holding ``nnx.Param``
(``scale``, ``bias``) and ``nnx.BatchStat`` (``mean``, ``var``) variables, and a training
call updates the statistics in place.  Its conventions are linen's: ``momentum`` is the decay
(default 0.99), ε = 1e-5 inside the root, biased running variance, channels on any axis
(default −1), and the variance as E[x²] − E[x]² unless ``use_fast_variance=False``.

Two ways to run it, as people do:

* ``nnx`` (default): the functional path NNX recommends for speed, ``nnx.split`` once, then
  jitted functions that ``nnx.merge`` the module, call it and return its new state.  ε and
  the momentum are set on the merged module inside the traced function, so they are traced
  values and one compilation serves every ε a property-based run draws.
* ``nnx:eager``: the module called directly, op by op, with no compilation.
* ``nnx:two_pass``: jitted, with ``use_fast_variance=False``.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData

from .base import FrameworkConventions, Hyper, Inventory, LayerSpec, Variable
from .flax import FlaxAdapter, statistics_dtype
from .jaxengine import _jax
from .snippets import data_block, footer, header


def _nnx():
    _jax()
    from flax import nnx

    return nnx


def _module(spec: LayerSpec, fast_variance: bool):
    nnx = _nnx()
    return nnx.BatchNorm(spec.channels, axis=spec.axis, use_bias=spec.affine, use_scale=spec.affine,
                         use_fast_variance=fast_variance, dtype=spec.dtype, param_dtype=spec.dtype,
                         rngs=nnx.Rngs(0))  # fmt: skip


@cache
def _compiled(graphdef):
    """Jitted inference, training-step and gradient functions for one module structure."""
    jax = _jax()
    nnx = _nnx()

    def merged(state, eps, momentum, *more):
        module = nnx.merge(graphdef, state, *more)
        module.epsilon, module.momentum = eps, momentum
        return module

    def evaluate(state, x, eps):
        return merged(state, eps, 0.0)(x, use_running_average=True)

    def train_step(state, x, eps, momentum):
        module = merged(state, eps, momentum)
        y = module(x, use_running_average=False)
        return y, nnx.state(module)

    def gradients(state, x, dy, eps):
        params, rest = nnx.split_state(state, nnx.Param, ...)

        # Every variable enters the differentiated function: the training call updates the
        # statistics, and NNX refuses to mutate a variable closed over from another trace.
        def forward(x, params, rest):
            return merged(params, eps, 0.5, rest)(x, use_running_average=False)

        _, pullback = jax.vjp(forward, x, params, rest)
        return pullback(dy)[:2]

    return jax.jit(evaluate), jax.jit(train_step), jax.jit(gradients)


class NnxAdapter(FlaxAdapter):
    name = "nnx"
    variants: ClassVar[dict[str, str]] = {
        "eager": "the module called directly, op by op, without jax.jit",
        "two_pass": "use_fast_variance=False (jitted): variance as E[(x − E[x])²] instead of E[x²] − E[x]²",
    }
    slow_variants: ClassVar[dict[str, str]] = {
        "eager": "JAX dispatches every operation on its own, as for flax:eager (17 s of a ci run on one core)",
    }

    @property
    def fast_variance(self) -> bool:
        return self.variant != "two_pass"

    @property
    def conventions(self) -> FrameworkConventions:
        linen = super().conventions
        names = {"scale": "scale", "offset": "bias", "running_mean": "mean", "running_variance": "var"}
        return FrameworkConventions(**{**linen.__dict__, "parameter_names": names,
                                       "variance_algorithm": "fast" if self.fast_variance else "two_pass"})  # fmt: skip

    # -- primitives: the layer is (module structure, jitted functions) or the eager module ----
    def build(self, spec: LayerSpec):
        module = _module(spec, self.fast_variance)
        if self.variant == "eager":
            return module
        graphdef, template = _nnx().split(module)
        return graphdef, _compiled(graphdef), template

    def framework_defaults(self, layer) -> tuple[float, float]:
        import inspect

        parameters = inspect.signature(_nnx().BatchNorm.__init__).parameters  # NNX's own defaults
        return parameters["epsilon"].default, parameters["momentum"].default

    def load_state(self, layer, data: CaseData, spec: LayerSpec):
        nnx = _nnx()
        module = layer if self.variant == "eager" else nnx.merge(layer[0], layer[2])  # a fresh copy of the built state
        held = statistics_dtype(spec.dtype)  # as NNX creates them: float32 in a half-precision layer (see flax.py)
        module.mean.set_value(self.tensor(data.running_mean, spec, held))
        module.var.set_value(self.tensor(data.running_var, spec, held))
        if spec.affine:
            module.scale.set_value(self.tensor(data.gamma, spec))
            module.bias.set_value(self.tensor(data.beta, spec))
        return module if self.variant == "eager" else nnx.state(module)

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        if self.variant == "eager":
            state.epsilon, state.momentum = hyper.eps, hyper.momentum
            return state(x, use_running_average=not training), state
        evaluate, train_step, _ = layer[1]
        if not training:
            return evaluate(state, x, hyper.eps), state
        return train_step(state, x, hyper.eps, hyper.momentum)

    def running_statistics(self, layer, state):
        if self.variant == "eager":
            return state.mean.get_value(), state.var.get_value()
        return state["mean"].get_value(), state["var"].get_value()

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        nnx = _nnx()
        if self.variant == "eager":
            graphdef, variables = nnx.split(state)
            gradients = _compiled(graphdef)[2]  # the eager module's own structure, differentiated by jax.vjp
        else:
            variables, gradients = state, layer[1][2]
        dx, dparams = gradients(variables, x, dy, hyper.eps)
        if "scale" not in dparams:
            return dx, None, None
        return dx, dparams["scale"].get_value(), dparams["bias"].get_value()

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        nnx = _nnx()
        axis = channel_axis % len(shape)
        module = _module(LayerSpec(len(shape), axis, shape[axis], dtype, True, "cpu"), self.fast_variance)
        roles = {v: k for k, v in self.conventions.parameter_names.items()}
        found = []
        for path, variable in nnx.state(module).flat_state():
            name = "/".join(str(p) for p in path)
            value = variable.get_value()
            found.append(Variable(name, roles.get(name, "other"), tuple(value.shape), str(value.dtype),
                                  isinstance(variable, nnx.Param)))  # fmt: skip
        params = nnx.state(module, nnx.Param)
        stats = nnx.state(module, nnx.BatchStat)
        trainable = sum(int(np.prod(v.shape)) for v in _jax().tree_util.tree_leaves(params))
        non_trainable = sum(int(np.prod(v.shape)) for v in _jax().tree_util.tree_leaves(stats))
        return Inventory(
            variables=tuple(found),
            trainable_count=trainable,
            non_trainable_count=non_trainable,
            total_count=trainable + non_trainable,
            reported={"nnx.state(module, nnx.Param) leaf sizes": trainable,
                      "nnx.state(module, nnx.BatchStat) leaf sizes": non_trainable},
        )

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        platform = "gpu" if case.device == "gpu" else "cpu"
        kwargs = (f"momentum={settings.momentum!r}, " if settings.momentum_given else "") + (
            f"epsilon={settings.eps!r}, " if settings.eps_given else ""
        )
        return header(case, self.label) + f"""import jax

jax.config.update("jax_enable_x64", True)  # float64 cases need it; float32 stays float32
import jax.numpy as jnp
from flax import nnx

{data_block(case.materialize())}
device = jax.devices("{platform}")[0]
def put(a):
    return jax.device_put(jnp.asarray(a, dtype=jnp.float64).astype("{case.dtype}"), device)

def fresh():  # every phase starts from the case's parameters and running statistics
    layer = nnx.BatchNorm({case.channels}, axis={case.layout.axis}, {kwargs}use_bias={case.affine},
                          use_scale={case.affine}, use_fast_variance={self.fast_variance}, dtype="{case.dtype}",
                          param_dtype="{case.dtype}", rngs=nnx.Rngs(0))
    layer.mean.set_value(put(running_mean)); layer.var.set_value(put(running_var))
    if gamma is not None:
        layer.scale.set_value(put(gamma)); layer.bias.set_value(put(beta))
    return layer

quantities["y_eval"] = fresh()(put(batches[0]), use_running_average=True)
layer = fresh()
quantities["y_train"], quantities["running_mean"], quantities["running_var"] = [], [], []
for batch in batches:
    quantities["y_train"].append(layer(put(batch), use_running_average=False))
    quantities["running_mean"].append(layer.mean.get_value()); quantities["running_var"].append(layer.var.get_value())
quantities["y_eval_after"] = layer(put(batches[0]), use_running_average=True)

graphdef, params, rest = nnx.split(fresh(), nnx.Param, ...)
def forward(x, params, rest):  # the statistics enter too: the training call updates them
    return nnx.merge(graphdef, params, rest)(x, use_running_average=False)

_, pullback = jax.vjp(forward, put(batches[0]), params, rest)
quantities["dx"], dparams, _ = pullback(put(dy))
if gamma is not None:
    quantities["dgamma"], quantities["dbeta"] = dparams["scale"].get_value(), dparams["bias"].get_value()
""" + footer()
