"""What every JAX engine shares: JAX with float64 enabled, and arrays and devices in and out.

Flax (linen and NNX), Haiku and Equinox all run on JAX: ``JaxEngine`` puts a case's arrays
on the right device in the case's dtype and reports JAX's devices, once for all of them.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from reference import DTYPES
from reference.dtypes import numpy_dtype, round_to

from .base import Adapter, Capabilities, LayerSpec


@cache
def _jax():
    """JAX, with float64 enabled (without it JAX silently computes float64 cases in float32)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


class JaxEngine(Adapter):
    """Arrays in and out, and devices, for the JAX engines."""

    @property
    def capabilities(self) -> Capabilities:
        """Ranks 2 to 5, any channel axis, every dtype, CPU and GPU (Flax, NNX and Haiku; Equinox takes fewer)."""
        return Capabilities(ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset(DTYPES), devices=frozenset({"cpu", "gpu"}),
                            any_channel_axis=True, affine_off=True, cumulative=False)  # fmt: skip

    def available_devices(self) -> frozenset[str]:
        try:
            return frozenset({"cpu", "gpu"}) if _jax().devices("gpu") else frozenset({"cpu"})
        except RuntimeError:
            return frozenset({"cpu"})

    def tensor(self, array: np.ndarray, spec: LayerSpec, dtype: str | None = None):
        """``array`` rounded to the case's dtype, then held in ``dtype`` (default: the case's) on the case's device.

        The rounding happens on the host, in NumPy, exactly as the reference rounds its inputs:
        converting with JAX would compile a ``convert_element_type`` program for every new
        shape and dtype, dozens per run, none of them the batch norm under test.
        """
        jax = _jax()
        device = jax.devices("gpu" if spec.device == "gpu" else "cpu")[0]
        held = np.asarray(round_to(array, spec.dtype), dtype=numpy_dtype(dtype or spec.dtype))
        return jax.device_put(held, device)

    def device_info(self) -> dict[str, str]:
        jax = _jax()
        return {**super().device_info(), "backend": jax.default_backend(), "devices": ", ".join(str(d) for d in jax.devices())}
