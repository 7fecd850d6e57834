"""Haiku adapter: ``hk.BatchNorm`` with its zero-debiased moving averages.

Conventions, from ``haiku/_src/batch_norm.py`` and ``moving_averages.py`` (dm-haiku 0.0.17):

* ``decay_rate`` is the decay itself (the old statistic's weight) and a **required** argument:
  Haiku has no default.  A case that leaves the decay unset runs with 0.9, the ``decay_rate``
  that Haiku's own ``hk.nets.ResNet`` documents as its default (``DEFAULT_DECAY``), so the
  momentum-default probe confirms this adapter's choice, not a Haiku default.
* ε = 1e-5 (``eps``), inside the root: ``scale·rsqrt(var + eps)``.
* ``create_scale`` and ``create_offset`` are required; both follow the case's ``affine``.
* The channels are on the last axis by default (``data_format="channels_last"``); axis 1 is
  ``data_format="channels_first"``; any other channel axis is the explicit ``axis`` argument
  (the axes to reduce), so every layout runs.
* The batch variance is E[x²] − E[x]² in the input's dtype, not clamped at 0 (``fast``).
* The running statistics are two ``hk.ExponentialMovingAverage`` modules with zero-debiasing
  on (their default): state ``hidden`` (h_t = d·h_{t−1} + (1 − d)·b_t, starting at 0),
  ``counter`` (int32) and ``average`` = h_t / (1 − d^t), which inference reads.  The running
  variance is fed the biased σ².  That is the reference's ``debiased_ema``, exactly.
* Parameters and statistics have the broadcast shape of the reduction (``keepdims``), such as
  (1, C, 1, 1), not (C,), and take the input's dtype: declared, with the ``hidden`` averages
  and ``counter`` of each moving average, as the layer's extra state and variable shape.

**Loading a case's starting statistics.**  Haiku's own freshly initialized state is
``counter = 0, hidden = 0, average = <the init batch's statistics>``.  The adapter loads the
same state with ``average`` = the case's running statistics: inference before training reads
them, and the first training step gives average = b₁ (the debiasing divides (1 − d)·b₁ by
1 − d¹), so the starting statistics are forgotten, as in ``debiased_ema`` (a₀ = 0).  No state
continues a plain EMA from a given average in general: with counter k and hidden = m₀·(1 − d^k)
the next average is [d·(1 − d^k)·m₀ + (1 − d)·b]/(1 − d^{k+1}), which equals d·m₀ + (1 − d)·b
only where d^k is negligible, and the int32 counter caps k at 2³¹ − 1 (so not for a float64
decay above about 1 − 1.7·10⁻⁸).  A decay of 1 is outside Haiku's documented range [0, 1):
the debiasing then divides 0 by 0.

JAX compiles once per input shape, dtype and layout: the module is built inside the
transformed function, so ε and ``decay_rate`` reach it as traced arguments, and the many
values a property-based run draws reuse one compilation.  float64 needs ``jax_enable_x64``,
which ``adapters.flax._jax`` turns on before JAX's first use.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from datamodel.case import Case, CaseData
from reference import Conventions

from .base import FrameworkConventions, Hyper, Inventory, LayerSpec, StateVariable, Variable
from .jaxengine import JaxEngine, _jax
from .snippets import data_block, footer, header

#: ``decay_rate`` for a case that leaves the decay unset: hk.BatchNorm has no default, and
#: hk.nets.ResNet documents 0.9 as its ``bn_config`` default.
DEFAULT_DECAY = 0.9
#: The module's name inside ``hk.transform_with_state``, and its two moving averages.
MODULE = "batch_norm"
MEAN_EMA, VAR_EMA = f"{MODULE}/~/mean_ema", f"{MODULE}/~/var_ema"


def _haiku():
    _jax()
    import haiku as hk

    return hk


def layout_arguments(rank: int, axis: int) -> dict:
    """``hk.BatchNorm``'s arguments that put the channels on ``axis`` (non-negative)."""
    if axis == rank - 1:
        return {}  # data_format="channels_last", the default
    if axis == 1:
        return {"data_format": "channels_first"}
    return {"axis": [a for a in range(rank) if a != axis]}  # the axes to reduce


def broadcast_shape(spec: LayerSpec) -> tuple[int, ...]:
    """The shape Haiku gives γ, β and the statistics: 1 on every reduced axis."""
    return tuple(spec.channels if a == spec.axis else 1 for a in range(spec.rank))


@cache
def _compiled(rank: int, axis: int, affine: bool):
    """Jitted inference, training-step and gradient functions for one layout."""
    jax = _jax()
    hk = _haiku()
    arguments = layout_arguments(rank, axis)

    def transformed(training: bool):
        def forward(x, eps, decay):
            layer = hk.BatchNorm(create_scale=affine, create_offset=affine, decay_rate=decay, eps=eps, name=MODULE,
                                 **arguments)  # fmt: skip
            return layer(x, is_training=training)

        return hk.transform_with_state(forward)

    infer, train = transformed(False), transformed(True)

    def evaluate(params, state, x, eps):
        return infer.apply(params, state, None, x, eps, DEFAULT_DECAY)[0]  # inference reads no decay

    def train_step(params, state, x, eps, decay):
        return train.apply(params, state, None, x, eps, decay)

    def gradients(params, state, x, dy, eps):
        def forward(x, params):
            return train.apply(params, state, None, x, eps, DEFAULT_DECAY)[0]

        _, pullback = jax.vjp(forward, x, params)
        return pullback(dy)

    return jax.jit(evaluate), jax.jit(train_step), jax.jit(gradients)


class HaikuAdapter(JaxEngine):
    name = "haiku"

    def version(self) -> str:
        import haiku

        return f"{haiku.__version__} (jax {_jax().__version__})"

    @property
    def conventions(self) -> FrameworkConventions:
        return FrameworkConventions(
            momentum_name="decay_rate",
            momentum_form="old_weight",
            momentum_default=DEFAULT_DECAY,
            eps_default=1e-5,
            default_channel_axis=-1,
            reference=Conventions(eps_placement="inside", running_variance="biased", averaging="debiased_ema"),
            parameter_names={
                "scale": f"{MODULE}/scale",
                "offset": f"{MODULE}/offset",
                "running_mean": f"{MEAN_EMA}/average",
                "running_variance": f"{VAR_EMA}/average",
            },
            eps_name="eps",
            variance_algorithm="fast",
            # each statistic's hk.ExponentialMovingAverage keeps its raw average and an int32 counter
            extra_state=tuple(StateVariable(f"{ema}/{leaf}", role, per_channel=leaf == "hidden")
                              for ema in (MEAN_EMA, VAR_EMA) for leaf, role in (("hidden", "other"), ("counter", "counter"))),
            variable_shape="broadcast",
        )

    # -- primitives: the layer is its jitted functions, the state (params, state) ----------
    def build(self, spec: LayerSpec):
        return _compiled(spec.rank, spec.axis, spec.affine)

    def framework_defaults(self, layer) -> tuple[float, float]:
        import inspect

        eps = inspect.signature(_haiku().BatchNorm.__init__).parameters["eps"].default  # Haiku's own ε default
        return eps, DEFAULT_DECAY  # decay_rate has no default: the adapter's choice (see DEFAULT_DECAY)

    def load_state(self, layer, data: CaseData, spec: LayerSpec) -> tuple[dict, dict]:
        return initial_state(data, spec, self.tensor)

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        evaluate, train_step, _ = layer
        params, statistics = state
        if not training:
            return evaluate(params, statistics, x, hyper.eps), state
        y, statistics = train_step(params, statistics, x, hyper.eps, hyper.momentum)
        return y, (params, statistics)

    def running_statistics(self, layer, state):
        statistics = state[1]
        return np.asarray(statistics[MEAN_EMA]["average"]).reshape(-1), np.asarray(statistics[VAR_EMA]["average"]).reshape(-1)

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        params, statistics = state
        dx, dparams = layer[2](params, statistics, x, dy, hyper.eps)
        if MODULE not in dparams:
            return dx, None, None
        return dx, dparams[MODULE]["scale"], dparams[MODULE]["offset"]

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        hk = _haiku()
        import jax.numpy as jnp

        rank = len(shape)
        arguments = layout_arguments(rank, channel_axis % rank)

        def forward(x):
            return hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=DEFAULT_DECAY, name=MODULE, **arguments)(
                x, is_training=True
            )

        params, state = hk.transform_with_state(forward).init(None, jnp.zeros(shape, dtype=dtype))
        roles = {v: k for k, v in self.conventions.parameter_names.items()}
        roles.update({f"{MEAN_EMA}/counter": "counter", f"{VAR_EMA}/counter": "counter"})
        found = []
        for trainable, tree in ((True, params), (False, state)):
            for module, leaves in tree.items():
                for leaf_name, leaf in leaves.items():
                    path = f"{module}/{leaf_name}"
                    found.append(Variable(path, roles.get(path, "other"), tuple(leaf.shape), str(leaf.dtype), trainable))
        trainable_count = hk.data_structures.tree_size(params)
        state_count = hk.data_structures.tree_size(state)
        return Inventory(
            variables=tuple(found),
            trainable_count=trainable_count,
            non_trainable_count=state_count,
            total_count=trainable_count + state_count,
            reported={"hk.data_structures.tree_size(params)": trainable_count,
                      "hk.data_structures.tree_size(state)": state_count},
        )  # fmt: skip

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        platform = "gpu" if case.device == "gpu" else "cpu"
        eps = f", eps={settings.eps!r}" if settings.eps_given else ""
        arguments = "".join(f", {k}={v!r}" for k, v in layout_arguments(case.rank, case.layout.axis).items())
        shape = tuple(case.channels if a == case.layout.axis else 1 for a in range(case.rank))
        return header(case, "haiku") + f"""import jax

jax.config.update("jax_enable_x64", True)  # float64 cases need it; float32 stays float32
import haiku as hk
import jax.numpy as jnp

{data_block(case.materialize())}
device = jax.devices("{platform}")[0]
def put(a):  # Haiku keeps gamma, beta and the statistics in the reduction's broadcast shape
    return jax.device_put(jnp.asarray(a, dtype=jnp.float64).astype("{case.dtype}"), device)

def model(is_training):
    def forward(x):
        # decay_rate is required (no default); {settings.momentum!r} is the case's decay{"" if settings.momentum_given else " (left unset: the adapter's 0.9)"}
        layer = hk.BatchNorm(create_scale={case.affine}, create_offset={case.affine}, decay_rate={settings.momentum!r}{eps}{arguments})
        return layer(x, is_training=is_training)
    return hk.transform_with_state(forward)

infer, train = model(False), model(True)
shape = {shape!r}
params = {{"batch_norm": {{"scale": put(gamma).reshape(shape), "offset": put(beta).reshape(shape)}}}} if gamma is not None else {{}}
def ema(average):  # Haiku's freshly initialized EMA state, with the case's starting average
    return {{"counter": jnp.zeros((), jnp.int32), "hidden": jnp.zeros(shape, "{case.dtype}"), "average": put(average).reshape(shape)}}
state = {{"batch_norm/~/mean_ema": ema(running_mean), "batch_norm/~/var_ema": ema(running_var)}}

quantities["y_eval"] = infer.apply(params, state, None, put(batches[0]))[0]
current, quantities["y_train"], quantities["running_mean"], quantities["running_var"] = state, [], [], []
for batch in batches:
    y, current = train.apply(params, current, None, put(batch))
    quantities["y_train"].append(y)
    quantities["running_mean"].append(current["batch_norm/~/mean_ema"]["average"].reshape(-1))
    quantities["running_var"].append(current["batch_norm/~/var_ema"]["average"].reshape(-1))
quantities["y_eval_after"] = infer.apply(params, current, None, put(batches[0]))[0]

def forward(x, params):
    return train.apply(params, state, None, x)[0]

_, pullback = jax.vjp(forward, put(batches[0]), params)
quantities["dx"], dparams = pullback(put(dy))
if gamma is not None:
    quantities["dgamma"] = dparams["batch_norm"]["scale"].reshape(-1)
    quantities["dbeta"] = dparams["batch_norm"]["offset"].reshape(-1)
""" + footer()


def initial_state(data: CaseData, spec: LayerSpec, tensor) -> tuple[dict, dict]:
    """``(params, state)`` for ``hk.transform_with_state``: γ and β, and each moving average as
    Haiku initializes it (counter 0, hidden 0) with ``average`` the case's starting statistic."""
    jax = _jax()

    shape = broadcast_shape(spec)
    params = {}
    if spec.affine:
        params[MODULE] = {"scale": tensor(np.reshape(data.gamma, shape), spec), "offset": tensor(np.reshape(data.beta, shape), spec)}

    # Shapes are set on the host: a reshape of a device array is a small XLA program of its own,
    # compiled again for every new channel count.
    def ema(average: np.ndarray) -> dict:
        hidden = tensor(np.zeros(shape), spec)
        counter = jax.device_put(np.zeros((), np.int32), next(iter(hidden.devices())))
        return {"counter": counter, "hidden": hidden, "average": tensor(np.reshape(average, shape), spec)}

    return params, {MEAN_EMA: ema(data.running_mean), VAR_EMA: ema(data.running_var)}
