"""Keras 3 adapters: ``keras.layers.BatchNormalization`` on each Keras backend.

Conventions (Keras' own, whatever the backend): ``momentum`` is the decay itself (weights
the old statistic, default 0.99); ε = 1e-3 inside the root; the running variance is updated
with the biased batch variance; channels on any axis (default −1).  Variables: ``gamma``,
``beta`` (trainable), ``moving_mean``, ``moving_variance`` (non-trainable), so
``count_params()`` is 4·C.

Keras reads ``KERAS_BACKEND`` once, at its first import, so each backend is its own
framework with its own process: ``keras`` (TensorFlow), ``keras-jax`` and ``keras-torch``.
An adapter reports itself unavailable when Keras was already imported with another backend.
Everything but the backend's bits (its version, gradients and snippet lines) is shared here.
Layers are cached per configuration and their variables reset for each case.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData
from reference import DTYPES, Conventions

from .base import Adapter, Capabilities, FrameworkConventions, Hyper, Inventory, LayerSpec, Variable
from .snippets import KERAS_LAYER_PROTOCOL, data_block, footer, header


def _keras(backend: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", backend)
    if backend == "jax":  # before Keras imports JAX: without it float64 cases silently run in float32
        import jax

        jax.config.update("jax_enable_x64", True)
    import keras

    if keras.backend.backend() != backend:
        raise ImportError(
            f"Keras was imported with the {keras.backend.backend()!r} backend; this adapter needs "
            f"{backend!r} (set KERAS_BACKEND={backend} before Keras is first imported)"
        )
    return keras


class KerasAdapter(Adapter):
    """The TensorFlow backend; ``KerasJaxAdapter`` and ``KerasTorchAdapter`` change the backend's bits only."""

    name = "keras"
    backend = "tensorflow"
    variants: ClassVar[dict[str, str]] = {
        "jit": "the layer's calls inside tf.function(jit_compile=True): XLA, as model.fit(jit_compile=True) runs them",
        "tf_function": "the layer's calls inside tf.function without XLA (a TensorFlow graph)",
    }
    slow_variants: ClassVar[dict[str, str]] = {
        variant: "ε and the momentum are Python attributes read when a call is traced, so each new value traces "
                 "(and for XLA compiles) again: 24 s (jit) and 14 s (tf_function) of a ci run on one core"
        for variant in ("jit", "tf_function")
    }  # fmt: skip
    process_environment: ClassVar[dict[str, str]] = {"KERAS_BACKEND": "tensorflow"}
    execution_modes: ClassVar[tuple[str, ...]] = ("jit", "tf_function")

    def __init__(self, variant: str = "") -> None:
        super().__init__(variant)
        self._traced: dict[tuple, object] = {}  # (layer id, what, ε, momentum) → its compiled function

    def compiled(self, layer, what: str, hyper: Hyper, make):
        """``make()``'s function, compiled for this variant and cached per layer, ε and momentum
        (traced values: a new ε is a new trace, as it would be for a user's compiled model)."""
        if not self.variant:
            return make()
        key = (id(layer), what, hyper.eps, hyper.momentum)
        if key not in self._traced:
            self._traced[key] = self.compile(make())
        return self._traced[key]

    def compile(self, function):
        import tensorflow as tf

        return tf.function(function, jit_compile=self.variant == "jit", reduce_retracing=True)

    def keras(self):
        return _keras(self.backend)

    def version(self) -> str:
        import tensorflow as tf

        return f"{self.keras().__version__} (tensorflow {tf.__version__})"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset(DTYPES), devices=frozenset({"cpu", "gpu"}),
                            any_channel_axis=True, affine_off=True, cumulative=False)  # fmt: skip

    @property
    def conventions(self) -> FrameworkConventions:
        return FrameworkConventions(
            momentum_name="momentum",
            momentum_form="old_weight",
            momentum_default=0.99,
            eps_default=1e-3,
            default_channel_axis=-1,
            reference=Conventions(eps_placement="inside", running_variance="biased", averaging="ema"),
            parameter_names={
                "scale": "gamma",
                "offset": "beta",
                "running_mean": "moving_mean",
                "running_variance": "moving_variance",
            },
        )

    def available_devices(self) -> frozenset[str]:
        return frozenset({"cpu", "gpu"}) if self.gpu_present() else frozenset({"cpu"})

    def gpu_present(self) -> bool:
        import tensorflow as tf

        self.keras()
        return bool(tf.config.list_physical_devices("GPU"))

    # -- primitives -------------------------------------------------------------------
    def build(self, spec: LayerSpec):
        layer = self.keras().layers.BatchNormalization(axis=spec.axis, center=spec.affine, scale=spec.affine, dtype=spec.dtype)
        layer.build(spec.input_shape)
        return layer

    def framework_defaults(self, layer) -> tuple[float, float]:
        return layer.epsilon, layer.momentum

    def load_state(self, layer, data: CaseData, spec: LayerSpec):
        if data.gamma is not None:
            layer.gamma.assign(data.gamma.astype(layer.gamma.dtype))
            layer.beta.assign(data.beta.astype(layer.beta.dtype))
        layer.moving_mean.assign(data.running_mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(data.running_var.astype(layer.moving_variance.dtype))
        return layer

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        layer.epsilon, layer.momentum = hyper.eps, hyper.momentum  # read at call time: one layer serves every ε
        call = self.compiled(layer, f"training={training}", hyper, lambda: lambda x: layer(x, training=training))
        return call(x), layer

    def running_statistics(self, layer, state):
        return layer.moving_mean, layer.moving_variance

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        import tensorflow as tf

        layer.epsilon = hyper.eps

        def make():
            def gradients(x, dy):
                sources = [x] + ([layer.gamma.value, layer.beta.value] if layer.scale else [])
                with tf.GradientTape() as tape:
                    tape.watch(sources)
                    y = layer(x, training=True)
                return tape.gradient(y, sources, output_gradients=dy)

            return gradients

        return (*self.compiled(layer, "vjp", hyper, make)(x, dy), None, None)[:3]

    def tensor(self, array: np.ndarray, spec: LayerSpec):
        ops = self.keras().ops
        return ops.cast(ops.convert_to_tensor(np.asarray(array, dtype=np.float64)), spec.dtype)

    def to_numpy(self, value) -> np.ndarray:
        ops = self.keras().ops
        return np.array(ops.convert_to_numpy(ops.cast(value, "float64")), dtype=np.float64)

    def placement(self, spec: LayerSpec):
        return self.keras().device("gpu:0" if spec.device == "gpu" else "cpu:0")

    def inventory_layer(self, channel_axis: int, dtype: str):
        """The layer whose variables ``inventory`` lists (a variant may add constructor arguments)."""
        return self.keras().layers.BatchNormalization(axis=channel_axis, dtype=dtype)

    @staticmethod
    def weight_name_and_dtype(weight) -> tuple[str, str]:
        """A weight's short name and dtype as the framework spells them."""
        return weight.name, str(weight.dtype)

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        keras = self.keras()
        layer = self.inventory_layer(channel_axis, dtype)
        model = keras.Sequential([keras.Input(shape=tuple(shape[1:]), dtype=dtype), layer])
        roles = {v: k for k, v in self.conventions.parameter_names.items()}
        variables = []
        for w in layer.weights:
            name, dtype_name = self.weight_name_and_dtype(w)
            variables.append(Variable(name, roles.get(name, "other"), tuple(w.shape), dtype_name, bool(w.trainable)))
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
        return Inventory(
            variables=tuple(variables),
            trainable_count=trainable,
            non_trainable_count=non_trainable,
            total_count=model.count_params(),
            reported={
                "layer.count_params()": layer.count_params(),
                "sum of model.trainable_weights sizes (summary's 'Trainable params')": trainable,
                "sum of model.non_trainable_weights sizes (summary's 'Non-trainable params')": non_trainable,
            },
        )

    def device_info(self) -> dict[str, str]:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        build = tf.sysconfig.get_build_info()
        info = {**super().device_info(), "gpus": ", ".join(g.name for g in gpus) or "none"}
        if gpus:
            info.update(cuda=str(build.get("cuda_version")), cudnn=str(build.get("cudnn_version")))
        return info

    # -- the snippet: shared, with the backend's imports and gradient lines -------------------
    SNIPPET_IMPORTS = "import tensorflow as tf\n"
    SNIPPET_GRADIENTS = """with tf.GradientTape() as tape:
    tape.watch(sources)
    y = layer(x, training=True)
grads = tape.gradient(y, sources, output_gradients=dy_)
"""

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        device = "gpu:0" if case.device == "gpu" else "cpu:0"
        kwargs = (f"momentum={settings.momentum!r}, " if settings.momentum_given else "") + (
            f"epsilon={settings.eps!r}, " if settings.eps_given else ""
        )
        x64 = 'import jax\n\njax.config.update("jax_enable_x64", True)\n' if self.backend == "jax" else ""
        return header(case, f"keras ({self.backend} backend)") + f"""import os

os.environ["KERAS_BACKEND"] = "{self.backend}"  # Keras reads it once, at its first import
{x64}import keras
{self.SNIPPET_IMPORTS}
{data_block(case.materialize())}
ops = keras.ops
def tensor(a):
    return ops.cast(ops.convert_to_tensor(np.asarray(a, dtype=np.float64)), "{case.dtype}")

def numpy(v):
    return np.array(ops.convert_to_numpy(ops.cast(v, "float64")))

with keras.device("{device}"):
    layer = keras.layers.BatchNormalization(axis={case.layout.axis}, {kwargs}center={case.affine}, scale={case.affine},
                                            dtype="{case.dtype}")
    layer.build({LayerSpec.of(case).input_shape!r})
    def reset():  # every phase starts from the case's parameters and running statistics
        if gamma is not None:
            layer.gamma.assign(gamma.astype(layer.gamma.dtype)); layer.beta.assign(beta.astype(layer.beta.dtype))
        layer.moving_mean.assign(running_mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(running_var.astype(layer.moving_variance.dtype))

{KERAS_LAYER_PROTOCOL}    x, dy_ = tensor(batches[0]), tensor(dy)
    sources = [x] + ([layer.gamma.value, layer.beta.value] if gamma is not None else [])
{_indent(self.SNIPPET_GRADIENTS)}
    for name, grad in zip(["dx", "dgamma", "dbeta"], grads):
        quantities[name] = numpy(grad)
""" + footer()


def _indent(block: str) -> str:
    return "".join(f"    {line}\n" if line else "\n" for line in block.splitlines())


class KerasJaxAdapter(KerasAdapter):
    """Keras on JAX: gradients through ``stateless_call`` and ``jax.vjp``."""

    name = "keras-jax"
    backend = "jax"
    variants: ClassVar[dict[str, str]] = {"jit": "the layer's stateless_call under jax.jit (XLA), as a jitted training step runs it"}
    slow_variants: ClassVar[dict[str, str]] = {
        "jit": "ε and the momentum are Python attributes, static under jax.jit, so each new value compiles "
               "again: 24 s of a ci run on one core",
    }  # fmt: skip
    process_environment: ClassVar[dict[str, str]] = {"KERAS_BACKEND": "jax"}
    execution_modes: ClassVar[tuple[str, ...]] = ("jit",)

    def compile(self, function):
        import jax

        return jax.jit(function)

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        if not self.variant:
            return super().forward(layer, state, x, training=training, hyper=hyper)
        layer.epsilon, layer.momentum = hyper.eps, hyper.momentum

        def make():
            def call(trainable, non_trainable, x):
                return layer.stateless_call(trainable, non_trainable, x, training=training)

            return call

        call = self.compiled(layer, f"training={training}", hyper, make)
        y, updated = call([v.value for v in layer.trainable_variables], [v.value for v in layer.non_trainable_variables], x)
        for variable, value in zip(layer.non_trainable_variables, updated, strict=True):
            variable.assign(value)
        return y, layer

    def version(self) -> str:
        import jax

        return f"{self.keras().__version__} (jax {jax.__version__})"

    def gpu_present(self) -> bool:
        import jax

        self.keras()
        return any(d.platform == "gpu" for d in jax.devices())

    def device_info(self) -> dict[str, str]:
        import jax

        self.keras()
        return {**Adapter.device_info(self), "backend": jax.default_backend(), "devices": ", ".join(map(str, jax.devices()))}

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        import jax

        layer.epsilon = hyper.eps

        def make():
            def gradients(trainable, fixed, x, dy):
                def forward(x, trainable):
                    return layer.stateless_call(trainable, fixed, x, training=True)[0]

                _, pullback = jax.vjp(forward, x, trainable)
                return pullback(dy)

            return gradients

        gradients = self.compiled(layer, "vjp", hyper, make)
        dx, dparams = gradients([v.value for v in layer.trainable_variables], [v.value for v in layer.non_trainable_variables], x, dy)
        return (dx, *dparams, None, None)[:3]  # trainable_variables: [gamma, beta]

    SNIPPET_IMPORTS = "import jax\n"
    SNIPPET_GRADIENTS = """fixed = [v.value for v in layer.non_trainable_variables]
def forward(x, trainable):
    return layer.stateless_call(trainable, fixed, x, training=True)[0]
_, pullback = jax.vjp(forward, x, [v.value for v in layer.trainable_variables])
dx, dparams = pullback(dy_)
grads = [dx, *dparams]
"""


class KerasTorchAdapter(KerasAdapter):
    """Keras on PyTorch: gradients through ``torch.autograd``.

    Its backend computes the batch variance as E[x²] − E[x]² (``keras/src/backend/torch/nn.py``,
    ``moments``), unlike the TensorFlow and JAX backends: declared as the fast algorithm.
    """

    name = "keras-torch"
    backend = "torch"
    variants: ClassVar[dict[str, str]] = {}
    slow_variants: ClassVar[dict[str, str]] = {}
    execution_modes: ClassVar[tuple[str, ...]] = ()
    process_environment: ClassVar[dict[str, str]] = {"KERAS_BACKEND": "torch"}

    @property
    def conventions(self) -> FrameworkConventions:
        return dataclasses.replace(super().conventions, variance_algorithm="fast")

    def version(self) -> str:
        import torch

        return f"{self.keras().__version__} (torch {torch.__version__})"

    def gpu_present(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def device_info(self) -> dict[str, str]:
        import torch

        info = {**Adapter.device_info(self), "cuda_available": str(torch.cuda.is_available())}
        if torch.cuda.is_available():
            info.update(gpu=torch.cuda.get_device_name(0), cuda=str(torch.version.cuda))
        return info

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        import torch

        layer.epsilon = hyper.eps
        x = x.detach().requires_grad_(True)
        sources = [x] + ([layer.gamma.value, layer.beta.value] if layer.scale else [])
        return (*torch.autograd.grad(layer(x, training=True), sources, grad_outputs=dy), None, None)[:3]

    SNIPPET_IMPORTS = "import torch\n"
    SNIPPET_GRADIENTS = """x = x.detach().requires_grad_(True)
sources[0] = x
grads = torch.autograd.grad(layer(x, training=True), sources, grad_outputs=dy_)
"""
