"""Keras 3 adapter (TensorFlow backend): ``keras.layers.BatchNormalization``.

Conventions: ``momentum`` is the decay itself (weights the old statistic, default 0.99);
ε = 1e-3 inside the root; the running variance is updated with the biased batch variance;
channels on any axis (default −1).  Variables: ``gamma``, ``beta`` (trainable),
``moving_mean``, ``moving_variance`` (non-trainable), so ``count_params()`` is 4·C.

Keras reads ``KERAS_BACKEND`` once, at its first import; this adapter needs the TensorFlow
backend and reports itself unavailable when Keras was already imported with another one.
Layers are cached per configuration and their variables reset for each case.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData
from reference import DTYPES, Conventions

from .base import Adapter, Capabilities, FrameworkConventions, Inventory, Settings, Variable
from .snippets import data_block, header

BACKEND = "tensorflow"


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", BACKEND)
    import keras

    if keras.backend.backend() != BACKEND:
        raise ImportError(
            f"Keras was imported with the {keras.backend.backend()!r} backend; this adapter needs "
            f"{BACKEND!r} (set KERAS_BACKEND={BACKEND} before Keras is first imported)"
        )
    return keras


def _tf():
    _keras()
    import tensorflow as tf

    return tf


class KerasAdapter(Adapter):
    name = "keras"
    variants: ClassVar[dict[str, str]] = {}
    process_environment: ClassVar[dict[str, str]] = {"KERAS_BACKEND": BACKEND}

    def __init__(self, variant: str = "") -> None:
        super().__init__(variant)
        self._layers: dict[tuple, object] = {}
        self._defaults: dict[tuple, tuple] = {}

    def version(self) -> str:
        keras = _keras()
        return f"{keras.__version__} ({BACKEND} {_tf().__version__})"

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
        return frozenset({"cpu", "gpu"}) if _tf().config.list_physical_devices("GPU") else frozenset({"cpu"})

    # -- translation ----------------------------------------------------------------
    def _device(self, case: Case):
        return _tf().device("/GPU:0" if case.device == "gpu" else "/CPU:0")

    def _layer(self, case: Case, settings: Settings):
        keras = _keras()
        key = (case.rank, case.layout.axis, case.channels, case.dtype, case.affine, case.device)
        layer = self._layers.get(key)
        if layer is None:
            with self._device(case):  # built without epsilon/momentum: it holds Keras' own defaults
                layer = keras.layers.BatchNormalization(
                    axis=case.layout.axis, center=case.affine, scale=case.affine, dtype=case.dtype
                )
                layer.build((None, *case.shape[1:]))
            self._layers[key] = layer
            self._defaults[key] = (layer.epsilon, layer.momentum)
        # Read at call time, so a cached layer serves every ε and momentum.
        default_eps, default_momentum = self._defaults[key]
        layer.epsilon = settings.eps if settings.eps_given else default_eps
        layer.momentum = settings.momentum if settings.momentum_given else default_momentum
        return layer

    @staticmethod
    def _reset(layer, data: CaseData) -> None:
        if data.gamma is not None:
            layer.gamma.assign(data.gamma.astype(layer.gamma.dtype))
            layer.beta.assign(data.beta.astype(layer.beta.dtype))
        layer.moving_mean.assign(data.running_mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(data.running_var.astype(layer.moving_variance.dtype))

    def _tensor(self, array: np.ndarray, case: Case):
        tf = _tf()
        return tf.cast(tf.constant(array, dtype=tf.float64), case.dtype)

    @staticmethod
    def _numpy(value) -> np.ndarray:
        return np.array(_tf().cast(value, "float64").numpy(), dtype=np.float64)

    # -- the protocol -------------------------------------------------------------------
    def evaluate(self, case: Case, data: CaseData, settings: Settings) -> np.ndarray:
        layer = self._layer(case, settings)
        self._reset(layer, data)
        with self._device(case):
            return self._numpy(layer(self._tensor(data.batches[0], case), training=False))

    def train(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        layer = self._layer(case, settings)
        self._reset(layer, data)
        outputs, means, variances = [], [], []
        with self._device(case):
            for batch in data.batches:
                outputs.append(self._numpy(layer(self._tensor(batch, case), training=True)))
                means.append(self._numpy(layer.moving_mean))
                variances.append(self._numpy(layer.moving_variance))
            after = self._numpy(layer(self._tensor(data.batches[0], case), training=False))
        return {
            "y_train": np.stack(outputs),
            "running_mean": np.stack(means),
            "running_var": np.stack(variances),
            "y_eval_after": after,
        }

    def gradients(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        tf = _tf()
        layer = self._layer(case, settings)
        self._reset(layer, data)
        with self._device(case):
            x = self._tensor(data.batches[0], case)
            sources = [x] + ([layer.gamma.value, layer.beta.value] if case.affine else [])
            with tf.GradientTape() as tape:
                tape.watch(sources)
                y = layer(x, training=True)
            grads = tape.gradient(y, sources, output_gradients=self._tensor(data.dy, case))
        result = {"dx": self._numpy(grads[0])}
        if case.affine:
            result.update(dgamma=self._numpy(grads[1]), dbeta=self._numpy(grads[2]))
        return result

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        keras = _keras()
        layer = keras.layers.BatchNormalization(axis=channel_axis, dtype=dtype)
        model = keras.Sequential([keras.Input(shape=tuple(shape[1:]), dtype=dtype), layer])
        roles = {v: k for k, v in self.conventions.parameter_names.items()}
        variables = tuple(
            Variable(w.name, roles.get(w.name, "other"), tuple(w.shape), str(w.dtype), bool(w.trainable))
            for w in layer.weights
        )
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
        return Inventory(
            variables=variables,
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
        tf = _tf()
        gpus = tf.config.list_physical_devices("GPU")
        build = tf.sysconfig.get_build_info()
        info = {**super().device_info(), "gpus": ", ".join(g.name for g in gpus) or "none"}
        if gpus:
            info.update(cuda=str(build.get("cuda_version")), cudnn=str(build.get("cudnn_version")))
        return info

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        device = "/GPU:0" if case.device == "gpu" else "/CPU:0"
        kwargs = (f"momentum={settings.momentum!r}, " if settings.momentum_given else "") + (
            f"epsilon={settings.eps!r}, " if settings.eps_given else ""
        )
        return header(case, "keras (TensorFlow backend)") + f"""import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
import tensorflow as tf

{data_block(case.materialize())}
def tensor(a):
    return tf.cast(tf.constant(a, dtype=tf.float64), "{case.dtype}")

with tf.device("{device}"):
    layer = keras.layers.BatchNormalization(axis={case.layout.axis}, {kwargs}center={case.affine}, scale={case.affine},
                                            dtype="{case.dtype}")
    layer.build((None, *{tuple(case.shape[1:])!r}))
    def reset():
        if gamma is not None:
            layer.gamma.assign(gamma.astype(layer.gamma.dtype)); layer.beta.assign(beta.astype(layer.beta.dtype))
        layer.moving_mean.assign(running_mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(running_var.astype(layer.moving_variance.dtype))

    reset()
    print("y_eval", tf.cast(layer(tensor(batches[0]), training=False), "float64").numpy())
    for step, batch in enumerate(batches):
        print("y_train", step, tf.cast(layer(tensor(batch), training=True), "float64").numpy())
        print("moving_mean", layer.moving_mean.numpy(), "moving_variance", layer.moving_variance.numpy())
    reset()
    x = tensor(batches[0])
    sources = [x] + ([layer.gamma.value, layer.beta.value] if gamma is not None else [])
    with tf.GradientTape() as tape:
        tape.watch(sources)
        y = layer(x, training=True)
    grads = tape.gradient(y, sources, output_gradients=tensor(dy))
    print("dx", tf.cast(grads[0], "float64").numpy())
    if gamma is not None:
        print("dgamma", grads[1].numpy(), "dbeta", grads[2].numpy())
"""
