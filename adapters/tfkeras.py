"""tf-keras adapter: Keras 2's ``tf_keras.layers.BatchNormalization``.

The batch norm of older TensorFlow code and of many saved models, kept alive as the
``tf-keras`` package.  Its declared conventions are Keras': ``momentum`` is the decay
(default 0.99), ε = 1e-3 inside the root, channels on any axis (default −1), and the
documented running update ``moving_var = moving_var·momentum + var(batch)·(1 − momentum)``
with the biased batch variance.

Keras 2 has two implementations behind one layer, chosen by ``fused``: the fused kernel
(``tf.compat.v1.nn.fused_batch_norm``) and a composite of ``tf.nn.moments`` and
``tf.nn.batch_normalization``.  ``fused=None`` (the default) takes the fused kernel when it
can: rank 4 (and 5) inputs with the channels on axis 1 or last, no renorm, no virtual batch.
The variants force each path: ``tf-keras:fused`` (ranks 4 and 5, channels first: the layer
refuses other ranks and axes) and ``tf-keras:unfused``.

``renorm=True`` (batch renormalization) and ``virtual_batch_size`` (ghost batch norm) change
training beyond what the reference expresses: renorm multiplies the normalized batch by
r = σ_B/σ_renorm and adds d = (μ_B − μ_renorm)/σ_renorm from two more moving averages, and
ghost batch norm normalizes sub-batches of the batch separately and updates the running
statistics with their averaged moments.  Their variants ``tf-keras:renorm`` and
``tf-keras:virtual_batch`` run what the reference does express, inference from the running
statistics and the parameter inventory, and answer ``unsupported`` with that reason for
training and gradients.  Their variables are declared: renorm's three more per-channel
averages as extra state, ghost batch norm's shapes (an extra leading axis for the virtual
batches, 1 on every reduced axis) as ``virtual_batch_broadcast``.

tf-keras depends on the ``tensorflow`` package; this project installs it with ``--no-deps``
beside ``tensorflow-cpu``, which provides the same ``tensorflow`` module (see the README).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData

from .base import Capabilities, FrameworkConventions, Hyper, LayerSpec, StateVariable
from .keras import KerasAdapter
from .snippets import KERAS_LAYER_PROTOCOL, data_block, footer, header

#: The constructor arguments that make each variant (the default variant passes none).
VARIANT_ARGUMENTS: dict[str, dict[str, object]] = {
    "": {},
    "fused": {"fused": True},
    "unfused": {"fused": False},
    "renorm": {"renorm": True},
    "virtual_batch": {"virtual_batch_size": 2},
}
#: Why the reference cannot check training and gradients of a variant (it still checks inference).
TRAINING_OUT_OF_REACH = {
    "renorm": "batch renormalization (renorm=True) corrects the training output by r = σ_B/σ_renorm and "
              "d = (μ_B − μ_renorm)/σ_renorm from two more moving averages; the reference has no renorm",
    "virtual_batch": "ghost batch norm (virtual_batch_size) normalizes sub-batches separately and averages "
                     "their moments into the running statistics; the reference has no ghost batches",
}  # fmt: skip

#: renorm=True's three more moving averages, per channel, beside the moving mean and variance
#: (the moving variance is then derived from ``moving_stddev``).
RENORM_STATE = tuple(StateVariable(name, "other", per_channel=True) for name in ("moving_stddev", "renorm_mean", "renorm_stddev"))


def _arguments(variant: str) -> str:
    """The variant's constructor arguments as Python source (``", fused=True"``, or nothing)."""
    return "".join(f", {name}={value!r}" for name, value in VARIANT_ARGUMENTS[variant].items())


def _tf_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras

    return tf_keras


class TfKerasAdapter(KerasAdapter):
    name = "tf-keras"
    variants: ClassVar[dict[str, str]] = {
        "fused": "fused=True: the fused kernel (tf.compat.v1.nn.fused_batch_norm); ranks 4 and 5",
        "unfused": "fused=False: tf.nn.moments and tf.nn.batch_normalization",
        "renorm": "renorm=True: batch renormalization; inference and inventory checked, training out of reach",
        "virtual_batch": "virtual_batch_size=2: ghost batch norm; inference and inventory checked, training out of reach",
    }
    process_environment: ClassVar[dict[str, str]] = {}
    slow_variants: ClassVar[dict[str, str]] = {}
    execution_modes: ClassVar[tuple[str, ...]] = ()  # Keras 3's compiled modes are not variants here

    def keras(self):
        return _tf_keras()

    def version(self) -> str:
        import tensorflow as tf

        return f"{_tf_keras().__version__} (tensorflow {tf.__version__})"

    @property
    def capabilities(self) -> Capabilities:
        base = super().capabilities
        if self.variant == "fused":
            # The layer raises for other ranks, and float64 has no fused kernel.  The kernel takes
            # the channels first or last; Capabilities say "axis 1" or "any", so this variant runs
            # channels-first only (the default variant takes the fused path channels-last too).
            return Capabilities(ranks=frozenset({4, 5}), dtypes=frozenset({"float16", "bfloat16", "float32"}),
                                devices=base.devices, any_channel_axis=False, affine_off=True)  # fmt: skip
        if self.variant in TRAINING_OUT_OF_REACH:
            return replace(base, phases=frozenset({"inference"}), phase_note=TRAINING_OUT_OF_REACH[self.variant])
        return base

    @property
    def conventions(self) -> FrameworkConventions:
        declared = super().conventions
        if self.variant == "renorm":
            return replace(declared, extra_state=RENORM_STATE)
        if self.variant == "virtual_batch":
            return replace(declared, variable_shape="virtual_batch_broadcast")
        return declared

    def gpu_present(self) -> bool:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))

    # -- primitives (the rest is Keras 3's: same variables, same call) ----------------------
    def build(self, spec: LayerSpec):
        layer = _tf_keras().layers.BatchNormalization(axis=spec.axis, center=spec.affine, scale=spec.affine,
                                                      dtype=spec.dtype, **VARIANT_ARGUMENTS[self.variant])  # fmt: skip
        layer.build(spec.input_shape)
        return layer

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        import tensorflow as tf

        layer.epsilon = hyper.eps
        sources = [x] + ([layer.gamma, layer.beta] if layer.scale else [])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return (*tape.gradient(y, sources, output_gradients=dy), None, None)[:3]

    def tensor(self, array: np.ndarray, spec: LayerSpec):
        import tensorflow as tf

        return tf.cast(tf.convert_to_tensor(np.asarray(array, dtype=np.float64)), spec.dtype)

    def to_numpy(self, value) -> np.ndarray:
        import tensorflow as tf

        return np.array(tf.cast(value, tf.float64).numpy(), dtype=np.float64)

    def placement(self, spec: LayerSpec):
        import tensorflow as tf

        return tf.device("/GPU:0" if spec.device == "gpu" else "/CPU:0")

    def inventory_layer(self, channel_axis: int, dtype: str):
        return _tf_keras().layers.BatchNormalization(axis=channel_axis, dtype=dtype, **VARIANT_ARGUMENTS[self.variant])

    @staticmethod
    def weight_name_and_dtype(weight) -> tuple[str, str]:
        return weight.name.rsplit("/", 1)[-1].split(":")[0], weight.dtype.name  # names like "batch_normalization/gamma:0"

    def load_state(self, layer, data: CaseData, spec: LayerSpec):
        import tensorflow as tf

        def assign(variable, values):  # half-precision layers keep float32 variables (tf-keras' _param_dtype)
            values = np.asarray(values, dtype=np.float64).reshape(variable.shape)  # (1, 1, C) with virtual batches
            variable.assign(tf.constant(values, dtype=variable.dtype))

        if data.gamma is not None:
            assign(layer.gamma, data.gamma)
            assign(layer.beta, data.beta)
        assign(layer.moving_mean, data.running_mean)
        assign(layer.moving_variance, data.running_var)
        return layer

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        device = "/GPU:0" if case.device == "gpu" else "/CPU:0"
        kwargs = (f"momentum={settings.momentum!r}, " if settings.momentum_given else "") + (
            f"epsilon={settings.eps!r}, " if settings.eps_given else ""
        )
        return header(case, self.label) + f"""import tensorflow as tf
import tf_keras

{data_block(case.materialize())}
def tensor(a):
    return tf.cast(tf.convert_to_tensor(np.asarray(a, dtype=np.float64)), "{case.dtype}")

def numpy(v):
    return np.array(tf.cast(v, tf.float64).numpy())

with tf.device("{device}"):
    layer = tf_keras.layers.BatchNormalization(axis={case.layout.axis}, {kwargs}center={case.affine},
                                               scale={case.affine}, dtype="{case.dtype}"{_arguments(self.variant)})
    layer.build({LayerSpec.of(case).input_shape!r})
    def reset():  # every phase starts from the case's parameters and running statistics
        for variable, values in [(layer.moving_mean, running_mean), (layer.moving_variance, running_var)] + (
                [(layer.gamma, gamma), (layer.beta, beta)] if gamma is not None else []):
            # half-precision layers keep float32 variables; virtual batches shape them (1, 1, C)
            variable.assign(tf.constant(np.reshape(values, variable.shape), dtype=variable.dtype))

{KERAS_LAYER_PROTOCOL}    x, dy_ = tensor(batches[0]), tensor(dy)
    sources = [x] + ([layer.gamma, layer.beta] if gamma is not None else [])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    for name, grad in zip(["dx", "dgamma", "dbeta"], tape.gradient(y, sources, output_gradients=dy_)):
        quantities[name] = numpy(grad)
""" + footer()
