"""A NumPy engine with a fake second device, for testing device-scoped ledger entries on a CPU machine.

``DeviceScopedAdapter`` claims a ``gpu`` device and, on it only, returns an inference output
off by one: a finding that exists on one device, as a GPU kernel's would.  Variants:

* ``fixed``: the "GPU kernel" fixed, so a ledger entry about it stops reproducing;
* ``no_gpu``: the device is absent from this machine (``available_devices`` is the CPU alone).

Never evidence about a framework: it drives the suite's ledger mechanism in tests only.
"""

from __future__ import annotations

from typing import ClassVar

from fakes import NumpyAdapter

from adapters.base import Capabilities, Hyper, LayerSpec

#: What ``device_info`` says of the fake device's backend (ledger ``backend`` conditions read it).
FAKE_BACKEND = {"fake_kernel": "on"}


class DeviceScopedAdapter(NumpyAdapter):
    name = "numpy-devices"
    variants: ClassVar[dict[str, str]] = {"fixed": "the gpu-only bug fixed", "no_gpu": "no gpu on this machine"}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ranks=frozenset({2, 3, 4, 5}), dtypes=frozenset({"float32", "float64"}),
                            devices=frozenset({"cpu", "gpu"}))  # fmt: skip

    def available_devices(self) -> frozenset[str]:
        return frozenset({"cpu"}) if self.variant == "no_gpu" else frozenset({"cpu", "gpu"})

    def device_info(self) -> dict[str, str]:
        return dict(FAKE_BACKEND)

    def forward(self, layer: LayerSpec, state: dict, x, *, training: bool, hyper: Hyper):
        y, state = super().forward(layer, state, x, training=training, hyper=hyper)
        if not training and layer.device == "gpu" and self.variant != "fixed":
            y = y + 1.0
        return y, state
