"""Equinox adapter: ``eqx.nn.BatchNorm`` in each of its modes, with its ``eqx.nn.State``.

The layer sees one example at a time, shaped (C, ...): the channels are axis 0 of the
example, so axis 1 of the batch, which ``jax.vmap(..., axis_name="batch")`` adds and over
which the layer's ``lax.pmean`` averages.  No other channel axis is offered
(``any_channel_axis=False``: the adapter does not transpose).  Common to every mode
(equinox 0.13.8, ``equinox/nn/_batch_norm.py``): ``momentum`` is the decay (the old
statistic's weight, default 0.99), ε = 1e-5 inside the root, the batch variance two-pass
(mean of squared deviations, clamped at 0) and biased, also when fed to the running
variance, whatever the ``mode="batch"`` docstring says of an "unbiased variance";
parameters and statistics have shape (C,) and the ``dtype`` argument's dtype.

Modes, each a variant:

* ``equinox``: ``mode="ema"``, which is also what ``mode`` left unset gives (``"legacy"``,
  with a warning).  State: a flag ``ema_first_time_index`` and the running (mean, var)
  ``ema_state_index``.  Warm-up: a fresh layer's first training call *replaces* the running
  statistics with the batch's, whatever the momentum; later calls update r = m·r + (1 − m)·b.
  Training normalizes with those updated running statistics, not with the batch's (the mode
  Equinox kept for backward compatibility, patrick-kidger/equinox#659), and the gradients reach
  the batch statistics through their weight 1 − m: declared ``normalization="running"``.  The
  case's starting statistics are loaded as a trained layer's (flag false), so the update is the
  plain EMA (``warmup="none"``).
* ``equinox:fresh``: ``mode="ema"`` as Equinox makes the layer: first-time flag true, so the
  first training step copies the batch statistics into the running ones and normalizes with
  them (declared ``warmup="copy_first_batch"``); later steps are the blended EMA above.  Equinox
  initializes ``ema_state_index`` with ``jnp.empty``, which JAX fills with zeros: inference
  before training would divide by √ε.  The adapter loads the case's starting statistics there
  instead, so y_eval is well defined and the reference's; training ignores them.
* ``equinox:batch``: ``mode="batch"``, the state as Equinox itself makes it.  State: an int
  ``batch_counter`` and the hidden (mean, var) ``batch_state_index``; training normalizes with
  the batch statistics and updates h = m·h + (1 − m)·b; inference reads h / (1 − m^counter),
  or h itself while the counter is 0 (a debiased average, declared ``debiased_ema``).  A fresh
  layer holds counter 0 and h = (0, 1); the adapter loads the case's starting statistics into
  h at counter 0, the same form, so inference before training reads them and the debiasing
  divides them too (declared ``debias_start="state"``: h starts at the loaded statistics, not
  at 0 as zero-debiasing assumes, so the running variance after t steps carries an extra
  m^t·h₀/(1 − m^t), 9·h₀ after one step with m = 0.9).
* ``equinox:batch_trained``: ``mode="batch"`` loaded as a long-trained layer: counter 2⁶²,
  where m^counter underflows and 1 − m^counter is exactly 1 for every m < 1 in float64, so
  h is the average and each step is the plain EMA (declared ``ema``).

``eps`` and ``momentum`` are static fields of the module (``field(static=True)``): they are
part of its structure, not arrays, so JAX compiles once per (input shape, dtype, ε, momentum).
The jitted functions take them as static arguments and build the module inside the trace.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from datamodel.case import Case, CaseData
from reference import DTYPES, Conventions

from .base import Capabilities, FrameworkConventions, Hyper, Inventory, LayerSpec, Variable
from .jaxengine import JaxEngine, _jax
from .snippets import data_block, footer, header

#: The vmapped batch axis's name, as the layer's ``axis_name``.
AXIS_NAME = "batch"
#: A long-trained layer's counter (``equinox:batch_trained``): momentum**counter underflows.
TRAINED_COUNTER = 2**62


def _eqx():
    _jax()
    import equinox as eqx

    return eqx


def _mode(variant: str) -> str:
    return "ema" if variant in ("", "fresh") else "batch"


@cache
def _compiled(mode: str):
    """Jitted inference, training-step and gradient functions of one mode.

    Each takes the state as arrays, ``{"weight", "bias", "statistics", "index"}`` (index: the
    ema mode's first-time flag or the batch mode's counter), builds the module and its
    ``eqx.nn.State`` inside the trace, and returns the new arrays with the running statistics
    inference would use (``"running"``).
    """
    jax = _jax()
    eqx = _eqx()
    import jax.numpy as jnp

    def module(x, arrays, eps, momentum):
        affine = arrays["weight"] is not None
        layer = eqx.nn.BatchNorm(x.shape[1], AXIS_NAME, eps=eps, momentum=momentum, channelwise_affine=affine,
                                 dtype=x.dtype, mode=mode)  # fmt: skip
        if affine:
            layer = eqx.tree_at(lambda m: (m.weight, m.bias), layer, (arrays["weight"], arrays["bias"]))
        state = eqx.nn.State(layer)
        statistics_index, other_index = (
            (layer.ema_state_index, layer.ema_first_time_index) if mode == "ema" else (layer.batch_state_index, layer.batch_counter)
        )
        state = state.set(statistics_index, arrays["statistics"]).set(other_index, arrays["index"])
        return layer, state, statistics_index, other_index

    def call(layer, state, x, inference: bool):
        batched = jax.vmap(lambda x, s: layer(x, s, inference=inference), axis_name=AXIS_NAME, in_axes=(0, None),
                           out_axes=(0, None))  # fmt: skip
        return batched(x, state)

    def running(statistics, index, momentum):
        if mode == "ema":
            return statistics
        # What mode="batch" inference divides by (equinox/nn/_batch_norm.py): Equinox keeps no averaged statistics.
        scale = jnp.where(index == 0, 1, 1 - momentum**index)
        return statistics[0] / scale, statistics[1] / scale

    def evaluate(arrays, x, eps, momentum):
        layer, state, _, _ = module(x, arrays, eps, momentum)
        return call(layer, state, x, inference=True)[0]

    def train_step(arrays, x, eps, momentum):
        layer, state, statistics_index, other_index = module(x, arrays, eps, momentum)
        y, state = call(layer, state, x, inference=False)
        statistics, index = state.get(statistics_index), state.get(other_index)
        return y, {**arrays, "statistics": statistics, "index": index, "running": running(statistics, index, momentum)}

    def gradients(arrays, x, dy, eps, momentum):
        def forward(x, weight, bias):
            layer, state, _, _ = module(x, {**arrays, "weight": weight, "bias": bias}, eps, momentum)
            return call(layer, state, x, inference=False)[0]

        _, pullback = jax.vjp(forward, x, arrays["weight"], arrays["bias"])
        return pullback(dy)

    static = ("eps", "momentum")
    return (jax.jit(evaluate, static_argnames=static), jax.jit(train_step, static_argnames=static),
            jax.jit(gradients, static_argnames=static))  # fmt: skip


class EquinoxAdapter(JaxEngine):
    name = "equinox"
    variants: ClassVar[dict[str, str]] = {
        "fresh": 'mode="ema" as Equinox makes it (first-time flag set: the first step copies the batch statistics), '
                 "the starting statistics loaded for inference before training",
        "batch": 'mode="batch" (normalizes with the batch statistics; a zero-debiased average), state as Equinox makes it: '
                 "counter 0, the starting statistics in the hidden averages",
        "batch_trained": 'mode="batch", loaded as a long-trained layer (counter 2^62: the debiasing factor is 1, '
                         "a plain EMA)",
    }  # fmt: skip

    def version(self) -> str:
        return f"{_eqx().__version__} (jax {_jax().__version__})"

    @property
    def mode(self) -> str:
        return _mode(self.variant)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ranks=frozenset({2, 3, 4, 5}),
            dtypes=frozenset(DTYPES),
            devices=frozenset({"cpu", "gpu"}),
            any_channel_axis=False,  # the channels are axis 0 of each example: axis 1 of the batch
            affine_off=True,
            cumulative=False,
        )

    @property
    def conventions(self) -> FrameworkConventions:
        averaging = "debiased_ema" if self.variant == "batch" else "ema"
        reference = Conventions(
            eps_placement="inside", running_variance="biased", averaging=averaging,
            normalization="running" if self.mode == "ema" else "batch",
            warmup="copy_first_batch" if self.variant == "fresh" else "none",
            # mode="batch": the hidden averages start at the loaded statistics (debiased_ema alone reads it).
            debias_start="state" if self.mode == "batch" else "zero",
        )  # fmt: skip
        statistics = "ema_state_index" if self.mode == "ema" else "batch_state_index"
        return FrameworkConventions(
            momentum_name="momentum",
            momentum_form="old_weight",
            momentum_default=0.99,
            eps_default=1e-5,
            default_channel_axis=1,
            reference=reference,
            parameter_names={
                "scale": "weight",
                "offset": "bias",
                "running_mean": f"{statistics}[0]",
                "running_variance": f"{statistics}[1]",
            },
            eps_name="eps",
            variance_algorithm="two_pass",
            extra_state=(("ema_first_time_index", "other") if self.mode == "ema" else ("batch_counter", "counter"),),
        )

    # -- primitives: the layer is a module holding the defaults plus the jitted functions ----
    def build(self, spec: LayerSpec):
        eqx = _eqx()
        # Built without eps or momentum, so it holds Equinox's own defaults (framework_defaults).
        module = eqx.nn.BatchNorm(spec.channels, AXIS_NAME, channelwise_affine=spec.affine, dtype=spec.dtype, mode=self.mode)
        return module, _compiled(self.mode)

    def framework_defaults(self, layer) -> tuple[float, float]:
        return layer[0].eps, layer[0].momentum

    def load_state(self, layer, data: CaseData, spec: LayerSpec) -> dict:
        return initial_arrays(self.variant, data, spec, self.tensor)

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        evaluate, train_step, _ = layer[1]
        if not training:
            return evaluate(state, x, eps=hyper.eps, momentum=hyper.momentum), state
        return train_step(state, x, eps=hyper.eps, momentum=hyper.momentum)

    def running_statistics(self, layer, state):
        return state["running"]

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        return layer[1][2](state, x, dy, eps=hyper.eps, momentum=hyper.momentum)

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        jax = _jax()
        eqx = _eqx()
        if channel_axis % len(shape) != 1:
            raise ValueError(f"eqx.nn.BatchNorm takes the channels on axis 0 of each example (axis 1), not axis {channel_axis}")
        module, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(shape[1], AXIS_NAME, dtype=dtype, mode=self.mode)
        names = {v: k for k, v in self.conventions.parameter_names.items()}
        found = [Variable(name, names[name], tuple(getattr(module, name).shape), str(getattr(module, name).dtype), True)
                 for name in ("weight", "bias")]  # fmt: skip
        if self.mode == "ema":
            indices = {"ema_first_time_index": "other", "ema_state_index[0]": "running_mean", "ema_state_index[1]": "running_variance"}
            values = [state.get(module.ema_first_time_index), *state.get(module.ema_state_index)]
        else:
            indices = {"batch_counter": "counter", "batch_state_index[0]": "running_mean", "batch_state_index[1]": "running_variance"}
            values = [state.get(module.batch_counter), *state.get(module.batch_state_index)]
        found += [Variable(name, role, tuple(v.shape), str(v.dtype), False) for (name, role), v in zip(indices.items(), values, strict=True)]
        parameters = jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_array))
        trainable = sum(int(leaf.size) for leaf in parameters)
        non_trainable = sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(state))
        return Inventory(
            variables=tuple(found),
            trainable_count=trainable,
            non_trainable_count=non_trainable,
            total_count=trainable + non_trainable,
            reported={"sizes of the module's array leaves (eqx.filter(module, eqx.is_array))": trainable,
                      "sizes of the eqx.nn.State's array leaves": non_trainable},
        )  # fmt: skip

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        platform = "gpu" if case.device == "gpu" else "cpu"
        kwargs = (f"eps={settings.eps!r}, " if settings.eps_given else "") + (
            f"momentum={settings.momentum!r}, " if settings.momentum_given else ""
        )
        if self.mode == "ema":
            flag = ("jnp.array(True))  # as Equinox makes it: the first step copies the batch statistics"
                    if self.variant == "fresh" else "jnp.array(False))  # a trained layer's state: no warm-up")  # fmt: skip
            load = ("state = state.set(layer.ema_state_index, (put(running_mean), put(running_var)))\n"
                    f"state = state.set(layer.ema_first_time_index, {flag}")  # fmt: skip
            running = "current.get(layer.ema_state_index)"
        else:
            counter = TRAINED_COUNTER if self.variant == "batch_trained" else 0
            note = ("a long-trained layer: momentum**counter underflows" if counter
                    else "as Equinox makes it: counter 0, inference reads the hidden averages")  # fmt: skip
            load = (f"state = state.set(layer.batch_state_index, (put(running_mean), put(running_var)))\n"
                    f"state = state.set(layer.batch_counter, jnp.array({counter}))  # {note}")  # fmt: skip
            running = ("(lambda h, c: (h[0] / jnp.where(c == 0, 1, 1 - layer.momentum**c), "
                       "h[1] / jnp.where(c == 0, 1, 1 - layer.momentum**c)))"
                       "(current.get(layer.batch_state_index), current.get(layer.batch_counter))"
                       "  # what mode='batch' inference divides by")  # fmt: skip
        return header(case, self.label) + f"""import jax

jax.config.update("jax_enable_x64", True)  # float64 cases need it; float32 stays float32
import equinox as eqx
import jax.numpy as jnp

{data_block(case.materialize())}
device = jax.devices("{platform}")[0]
def put(a):
    return jax.device_put(jnp.asarray(a, dtype=jnp.float64).astype("{case.dtype}"), device)

layer, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)({case.channels}, "batch", {kwargs}channelwise_affine={case.affine},
                                                        dtype="{case.dtype}", mode="{self.mode}")
if gamma is not None:
    layer = eqx.tree_at(lambda m: (m.weight, m.bias), layer, (put(gamma), put(beta)))
{load}

def call(x, state, inference):  # the layer sees one example (C, ...); vmap supplies the batch axis
    return jax.vmap(lambda x, s: layer(x, s, inference=inference), axis_name="batch", in_axes=(0, None),
                    out_axes=(0, None))(x, state)

quantities["y_eval"] = call(put(batches[0]), state, True)[0]
current, quantities["y_train"], quantities["running_mean"], quantities["running_var"] = state, [], [], []
for batch in batches:
    y, current = call(put(batch), current, False)
    quantities["y_train"].append(y)
    mean, var = {running}
    quantities["running_mean"].append(mean)
    quantities["running_var"].append(var)
quantities["y_eval_after"] = call(put(batches[0]), current, True)[0]

parameters, rest = eqx.partition(layer, eqx.is_inexact_array)
def forward(x, parameters):
    layer_ = eqx.combine(parameters, rest)
    return jax.vmap(lambda x, s: layer_(x, s, inference=False), axis_name="batch", in_axes=(0, None),
                    out_axes=(0, None))(x, state)[0]

_, pullback = jax.vjp(forward, put(batches[0]), parameters)
quantities["dx"], dparameters = pullback(put(dy))
if gamma is not None:
    quantities["dgamma"], quantities["dbeta"] = dparameters.weight, dparameters.bias
""" + footer()


def initial_arrays(variant: str, data: CaseData, spec: LayerSpec, tensor) -> dict:
    """The state the jitted functions take: γ, β, the statistics and the flag or counter (see the module docstring)."""
    jax = _jax()
    import jax.numpy as jnp

    statistics = (tensor(data.running_mean, spec), tensor(data.running_var, spec))
    device = next(iter(statistics[0].devices()))
    if _mode(variant) == "ema":
        index = jnp.array(variant == "fresh")  # fresh: the first step copies the batch statistics; else a trained layer's
    else:
        index = jnp.array(TRAINED_COUNTER if variant == "batch_trained" else 0)
    return {
        "weight": tensor(data.gamma, spec) if spec.affine else None,
        "bias": tensor(data.beta, spec) if spec.affine else None,
        "statistics": statistics,
        "index": jax.device_put(index, device),
        "running": statistics,
    }
