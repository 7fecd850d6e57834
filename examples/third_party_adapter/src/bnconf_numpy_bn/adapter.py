"""The bn-conformance adapter for ``layer.BatchNorm``: declarations and six primitives.

This is everything an engine needs: bn-conformance's ``Adapter.run`` drives the primitives
through the protocol (inference, training steps, inference after training, gradients) and
compares every quantity with its float64 reference.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adapters.base import Adapter, Capabilities, FrameworkConventions, Hyper, Inventory, LayerSpec, Variable
from reference import Conventions

from .layer import BatchNorm


class NumpyBatchNormAdapter(Adapter):
    name = "numpy-bn"
    variants: ClassVar[dict[str, str]] = {}

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            mine = version("bnconf-numpy-bn")
        except PackageNotFoundError:  # run from its source tree with --adapter, not installed
            mine = "source"
        return f"{mine} (numpy {np.__version__})"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset({"float32", "float64"}),
                            devices=frozenset({"cpu"}), any_channel_axis=True, affine_off=False)  # fmt: skip

    @property
    def conventions(self) -> FrameworkConventions:
        return FrameworkConventions(
            momentum_name="momentum", momentum_form="old_weight", momentum_default=0.9, eps_default=1e-5,
            default_channel_axis=-1, reference=Conventions(eps_placement="inside", running_variance="biased"),
            parameter_names={"scale": "gamma", "offset": "beta", "running_mean": "moving_mean",
                             "running_variance": "moving_var"},
        )  # fmt: skip

    def build(self, spec: LayerSpec) -> LayerSpec:
        return spec  # the layer is cheap: one is made per case in load_state

    def framework_defaults(self, layer: LayerSpec) -> tuple[float, float]:
        fresh = BatchNorm(1)
        return fresh.epsilon, fresh.momentum

    def load_state(self, layer: LayerSpec, data, spec: LayerSpec) -> BatchNorm:
        bn = BatchNorm(spec.channels, axis=spec.axis, dtype=spec.dtype)
        bn.gamma, bn.beta = data.gamma.astype(spec.dtype), data.beta.astype(spec.dtype)
        bn.moving_mean, bn.moving_var = data.running_mean.astype(spec.dtype), data.running_var.astype(spec.dtype)
        return bn

    def forward(self, layer: LayerSpec, state: BatchNorm, x, *, training: bool, hyper: Hyper):
        state.epsilon, state.momentum = hyper.eps, hyper.momentum
        return state(x, training=training), state

    def running_statistics(self, layer: LayerSpec, state: BatchNorm):
        return state.moving_mean.copy(), state.moving_var.copy()

    def vjp(self, layer: LayerSpec, state: BatchNorm, x, dy, hyper: Hyper):
        state.epsilon = hyper.eps
        return state.backward(x, dy)

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        c = shape[channel_axis]
        variables = tuple(Variable(name, role, (c,), dtype, trainable) for name, role, trainable in (
            ("gamma", "scale", True), ("beta", "offset", True),
            ("moving_mean", "running_mean", False), ("moving_var", "running_variance", False)))  # fmt: skip
        return Inventory(variables, 2 * c, 2 * c, 4 * c, {"four arrays of C values": 4 * c})
