"""PyTorch adapter: ``torch.nn.BatchNorm1d/2d/3d``.

Conventions: ``momentum`` m weights the new batch (decay = 1 − m, default 0.1);
``momentum=None`` is a cumulative average; the running variance is updated with the
unbiased estimator; ε = 1e-5 inside the root; channels on axis 1 only.

Variants: ``channels_last`` (the ``torch.channels_last``/``channels_last_3d`` memory format
for rank 4/5), ``no_running_stats`` (``track_running_stats=False``), ``no_cudnn`` (cuDNN
disabled; matters on CUDA only).  Modules are cached per configuration and reset for each
case, so a run does not build a new module per example.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData
from reference import DTYPES, Conventions

from .base import Adapter, Capabilities, FrameworkConventions, Inventory, Settings, Variable
from .snippets import data_block, header


def _torch():
    import torch

    return torch


class TorchAdapter(Adapter):
    name = "torch"
    variants: ClassVar[dict[str, str]] = {
        "channels_last": "rank 4/5 inputs in the channels_last memory format",
        "no_running_stats": "track_running_stats=False: inference mode uses batch statistics",
        "no_cudnn": "cuDNN disabled (torch.backends.cudnn.flags(enabled=False)); CUDA only differs",
    }

    def __init__(self, variant: str = "") -> None:
        super().__init__(variant)
        self._modules: dict[tuple, object] = {}
        self._defaults: dict[tuple, tuple] = {}

    def version(self) -> str:
        return _torch().__version__

    @property
    def capabilities(self) -> Capabilities:
        ranks = {4, 5} if self.variant == "channels_last" else {2, 3, 4, 5}
        return Capabilities(
            ranks=frozenset(ranks),
            dtypes=frozenset(DTYPES),
            devices=frozenset({"gpu"}) if self.variant == "no_cudnn" else frozenset({"cpu", "gpu"}),
            any_channel_axis=False,
            affine_off=True,
            cumulative=self.variant != "no_running_stats",
            memory_format_twin="torch:channels_last" if self.variant == "" else None,
        )

    @property
    def conventions(self) -> FrameworkConventions:
        return FrameworkConventions(
            momentum_name="momentum",
            momentum_form="new_weight",
            momentum_default=0.1,
            eps_default=1e-5,
            default_channel_axis=1,
            reference=Conventions(
                eps_placement="inside",
                running_variance="unbiased",
                averaging="ema",
                tracks_running_stats=self.variant != "no_running_stats",
            ),
            parameter_names={
                "scale": "weight",
                "offset": "bias",
                "running_mean": "running_mean",
                "running_variance": "running_var",
                "counter": "num_batches_tracked",
            },
        )

    def available_devices(self) -> frozenset[str]:
        return frozenset({"cpu", "gpu"}) if _torch().cuda.is_available() else frozenset({"cpu"})

    # -- translation ----------------------------------------------------------------
    @staticmethod
    def module_class(rank: int):
        nn = _torch().nn
        return {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]

    def _device(self, case_device: str) -> str:
        return "cuda" if case_device == "gpu" else "cpu"

    def _module(self, case: Case, settings: Settings):
        torch = _torch()
        key = (case.rank, case.channels, case.dtype, case.affine, case.device)
        module = self._modules.get(key)
        if module is None:
            # Built without eps/momentum: what it holds then is PyTorch's own default.
            module = self.module_class(case.rank)(
                case.channels,
                affine=case.affine,
                track_running_stats=self.variant != "no_running_stats",
            ).to(device=self._device(case.device), dtype=getattr(torch, case.dtype))
            self._modules[key] = module
            self._defaults[key] = (module.eps, module.momentum)
        default_eps, default_momentum = self._defaults[key]
        module.eps = settings.eps if settings.eps_given else default_eps
        module.momentum = settings.momentum if settings.momentum_given else default_momentum  # None: cumulative
        return module

    def _reset(self, module, data: CaseData) -> None:
        torch = _torch()
        with torch.no_grad():
            if data.gamma is not None:
                module.weight.copy_(torch.from_numpy(data.gamma))
                module.bias.copy_(torch.from_numpy(data.beta))
                module.weight.grad = None
                module.bias.grad = None
            if module.track_running_stats:
                module.running_mean.copy_(torch.from_numpy(data.running_mean))
                module.running_var.copy_(torch.from_numpy(data.running_var))
                module.num_batches_tracked.zero_()

    def _tensor(self, array: np.ndarray, case: Case):
        torch = _torch()
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(
            device=self._device(case.device), dtype=getattr(torch, case.dtype)
        )
        if self.variant == "channels_last":
            fmt = torch.channels_last if case.rank == 4 else torch.channels_last_3d
            tensor = tensor.contiguous(memory_format=fmt)
        return tensor

    @staticmethod
    def _numpy(tensor) -> np.ndarray:
        # .copy(): a float64 CPU tensor converts without a copy and would alias live state
        return tensor.detach().to(device="cpu", dtype=_torch().float64).numpy().copy()

    def _backend_flags(self):
        if self.variant == "no_cudnn":
            return _torch().backends.cudnn.flags(enabled=False)
        return contextlib.nullcontext()

    # -- the protocol -------------------------------------------------------------------
    def evaluate(self, case: Case, data: CaseData, settings: Settings) -> np.ndarray:
        torch = _torch()
        module = self._module(case, settings)
        self._reset(module, data)
        module.eval()
        with torch.no_grad(), self._backend_flags():
            return self._numpy(module(self._tensor(data.batches[0], case)))

    def train(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        torch = _torch()
        module = self._module(case, settings)
        self._reset(module, data)
        module.train()
        outputs, means, variances = [], [], []
        with torch.no_grad(), self._backend_flags():
            for batch in data.batches:
                outputs.append(self._numpy(module(self._tensor(batch, case))))
                if module.track_running_stats:
                    means.append(self._numpy(module.running_mean))
                    variances.append(self._numpy(module.running_var))
            module.eval()
            after = self._numpy(module(self._tensor(data.batches[0], case)))
        result = {"y_train": np.stack(outputs), "y_eval_after": after}
        if module.track_running_stats:
            result.update(running_mean=np.stack(means), running_var=np.stack(variances))
        return result

    def gradients(self, case: Case, data: CaseData, settings: Settings) -> dict[str, np.ndarray]:
        module = self._module(case, settings)
        self._reset(module, data)
        module.train()
        x = self._tensor(data.batches[0], case).detach().requires_grad_(True)
        with self._backend_flags():
            y = module(x)
            y.backward(self._tensor(data.dy, case))
        result = {"dx": self._numpy(x.grad)}
        if case.affine:
            result.update(dgamma=self._numpy(module.weight.grad), dbeta=self._numpy(module.bias.grad))
        return result

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        torch = _torch()
        if channel_axis % len(shape) != 1:
            raise ValueError(f"PyTorch batch norm keeps channels on axis 1, not axis {channel_axis}")
        module = self.module_class(len(shape))(
            shape[1], track_running_stats=self.variant != "no_running_stats"
        ).to(dtype=getattr(torch, dtype))
        names = {v: k for k, v in self.conventions.parameter_names.items()}
        variables = []
        for name, tensor in module.named_parameters():
            variables.append(Variable(name, names.get(name, "other"), tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."), True))
        for name, tensor in module.named_buffers():
            variables.append(Variable(name, names.get(name, "other"), tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."), False))
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        buffers = sum(b.numel() for b in module.buffers())
        state = sum(t.numel() for t in module.state_dict().values())
        return Inventory(
            variables=tuple(variables),
            trainable_count=trainable,
            non_trainable_count=buffers,
            total_count=state,
            reported={
                "sum(p.numel() for p in parameters())": sum(p.numel() for p in module.parameters()),
                "sum(b.numel() for b in buffers())": buffers,
                "sum(t.numel() for t in state_dict().values())": state,
            },
        )

    def device_info(self) -> dict[str, str]:
        torch = _torch()
        info = {**super().device_info(), "cuda_available": str(torch.cuda.is_available())}
        if torch.cuda.is_available():
            info.update(gpu=torch.cuda.get_device_name(0), cuda=str(torch.version.cuda),
                        cudnn=str(torch.backends.cudnn.version()))  # fmt: skip
        return info

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[case.rank]
        device = "cuda" if case.device == "gpu" else "cpu"
        memory = (
            f".contiguous(memory_format=torch.{'channels_last' if case.rank == 4 else 'channels_last_3d'})"
            if self.variant == "channels_last" else ""
        )  # fmt: skip
        cudnn = "torch.backends.cudnn.enabled = False\n" if self.variant == "no_cudnn" else ""
        kwargs = (f"eps={settings.eps!r}, " if settings.eps_given else "") + (
            f"momentum={settings.momentum!r}, " if settings.momentum_given else ""
        )
        return header(case, "torch") + f"""import torch

{data_block(case.materialize())}
{cudnn}dtype, device = torch.{case.dtype}, "{device}"
def tensor(a):
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

def data(a):  # inputs and upstream gradients, in the case's memory format
    return tensor(a){memory}

layer = torch.nn.{cls}({case.channels}, {kwargs}affine={case.affine},
                       track_running_stats={self.variant != "no_running_stats"}).to(device=device, dtype=dtype)
with torch.no_grad():
    if gamma is not None:
        layer.weight.copy_(tensor(gamma)); layer.bias.copy_(tensor(beta))
    if layer.track_running_stats:
        layer.running_mean.copy_(tensor(running_mean)); layer.running_var.copy_(tensor(running_var))

layer.eval()
print("y_eval", layer(data(batches[0])).detach().double().cpu().numpy())
layer.train()
for step, batch in enumerate(batches):
    x = data(batch).requires_grad_(step == 0)
    y = layer(x)
    print("y_train", step, y.detach().double().cpu().numpy())
    if layer.track_running_stats:
        print("running_mean", layer.running_mean.double().cpu().numpy(), "running_var", layer.running_var.double().cpu().numpy())
    if step == 0:
        y.backward(data(dy))
        print("dx", x.grad.double().cpu().numpy())
        if gamma is not None:
            print("dgamma", layer.weight.grad.double().cpu().numpy(), "dbeta", layer.bias.grad.double().cpu().numpy())
# Note: the gradient above is taken at the initial parameters; bn-conformance takes it on a fresh layer.
"""
