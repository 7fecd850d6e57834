"""PyTorch adapter: ``torch.nn.BatchNorm1d/2d/3d``.

Conventions: ``momentum`` m weights the new batch (decay = 1 − m, default 0.1);
``momentum=None`` is a cumulative average; the running variance is updated with the
unbiased estimator; ε = 1e-5 inside the root; channels on axis 1 only.  Beside the running
statistics the module keeps a scalar int64 buffer ``num_batches_tracked`` (declared extra state).

Variants: ``channels_last`` (the ``torch.channels_last``/``channels_last_3d`` memory format
for rank 4/5), ``no_running_stats`` (``track_running_stats=False``), ``no_cudnn`` (cuDNN
disabled; matters on CUDA only).  Modules are cached per configuration and reset for each
case, so a run does not build a new module per example.
"""

from __future__ import annotations

import contextlib
import itertools
import types
from typing import ClassVar

import numpy as np

from datamodel.case import Case, CaseData
from reference import DTYPES, Conventions

from .base import Adapter, Capabilities, FrameworkConventions, Hyper, Inventory, LayerSpec, StateVariable, Variable
from .snippets import data_block, footer, header


def _torch():
    import torch

    return torch


def _call_module(layer, x):
    return layer(x)


def _forward_of_its_own():
    """A function calling a module, with a code object no other compiled module shares.

    Dynamo keeps what it compiled on the code object of the frame it compiles, guarded by what
    the graph read.  ``torch.compile(module)`` compiles code every module shares, so the graphs
    one case ran depended on what earlier cases of other modules (or another adapter in the
    same process, such as the execution property's twin) had compiled.  A fresh code object per
    module gives each its own cache; inductor's own cache of generated kernels is still shared,
    so an identical graph is not generated twice.
    """
    code = _call_module.__code__.replace(co_name=f"_call_module_{next(_FORWARD_NUMBERS)}")
    return types.FunctionType(code, _call_module.__globals__, code.co_name)


_FORWARD_NUMBERS = itertools.count()


class TorchAdapter(Adapter):
    name = "torch"
    variants: ClassVar[dict[str, str]] = {
        "channels_last": "rank 4/5 inputs in the channels_last memory format",
        "no_running_stats": "track_running_stats=False: inference mode uses batch statistics",
        "no_cudnn": "cuDNN disabled (torch.backends.cudnn.flags(enabled=False)); CUDA only differs",
        "compile": "torch.compile (inductor) of the module, dynamic shapes; compared with eager PyTorch",
    }
    slow_variants: ClassVar[dict[str, str]] = {
        "compile": "inductor compiles every configuration, and again for each new ε or momentum (dynamo guards on "
                   "them): about 50 s of a ci run on one core with a cold kernel cache; the execution property "
                   "still compares it with eager PyTorch in a quick run",
    }  # fmt: skip
    #: Each compiled module has a dynamo cache of its own (``_forward_of_its_own``), so the
    #: execution property's torch:compile twin and torch:compile's own suite, which share a
    #: process, do not change each other's graphs.
    execution_modes: ClassVar[tuple[str, ...]] = ("compile",)

    def __init__(self, variant: str = "") -> None:
        super().__init__(variant)
        self._compiled: dict[int, object] = {}  # id of a cached module → its torch.compile wrapper

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
            memory_format_twins=("channels_last",) if self.variant == "" else (),
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
            eps_name="eps",
            parameter_names={
                "scale": "weight",
                "offset": "bias",
                "running_mean": "running_mean",
                "running_variance": "running_var",
                "counter": "num_batches_tracked",
            },
            # a scalar int64 buffer beside the running statistics (momentum=None divides by it);
            # track_running_stats=False creates neither
            extra_state=(StateVariable("num_batches_tracked", "counter"),) if self.variant != "no_running_stats" else (),
        )

    def available_devices(self) -> frozenset[str]:
        return frozenset({"cpu", "gpu"}) if _torch().cuda.is_available() else frozenset({"cpu"})

    # -- primitives -------------------------------------------------------------------
    @staticmethod
    def module_class(rank: int):
        nn = _torch().nn
        return {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]

    @staticmethod
    def _device(spec: LayerSpec) -> str:
        return "cuda" if spec.device == "gpu" else "cpu"

    def build(self, spec: LayerSpec):
        torch = _torch()
        return self.module_class(spec.rank)(
            spec.channels, affine=spec.affine, track_running_stats=self.variant != "no_running_stats"
        ).to(device=self._device(spec), dtype=getattr(torch, spec.dtype))

    def framework_defaults(self, layer) -> tuple[float, float | None]:
        return layer.eps, layer.momentum

    def load_state(self, layer, data: CaseData, spec: LayerSpec):
        torch = _torch()
        with torch.no_grad():
            if data.gamma is not None:
                layer.weight.copy_(torch.from_numpy(data.gamma))
                layer.bias.copy_(torch.from_numpy(data.beta))
            if layer.track_running_stats:
                layer.running_mean.copy_(torch.from_numpy(data.running_mean))
                layer.running_var.copy_(torch.from_numpy(data.running_var))
                layer.num_batches_tracked.zero_()
        return layer

    def _call(self, layer, x):
        """The module's forward: eager, or through its ``torch.compile`` wrapper (made once per module)."""
        if self.variant != "compile":
            return layer(x)
        compiled = self._compiled.get(id(layer))
        if compiled is None:
            torch = _torch()
            # ε and the momentum are module attributes that dynamo guards on: each new value
            # recompiles, so the limit must not silently send later cases back to eager mode
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 1_000_000)
            torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 1_000_000)
            compiled = self._compiled[id(layer)] = torch.compile(_forward_of_its_own(), dynamic=True)
        return compiled(layer, x)

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        layer.eps, layer.momentum = hyper.eps, hyper.momentum  # momentum None: a cumulative average
        layer.train(training)
        with _torch().no_grad():
            return self._call(layer, x), layer

    def running_statistics(self, layer, state):
        return (layer.running_mean, layer.running_var) if layer.track_running_stats else None

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        layer.eps, layer.momentum = hyper.eps, hyper.momentum
        layer.train(True)
        x = x.detach().requires_grad_(True)
        sources = [x, layer.weight, layer.bias] if layer.affine else [x]
        grads = _torch().autograd.grad(self._call(layer, x), sources, grad_outputs=dy)
        return (*grads, None, None)[:3]

    def read_state_file(self, path):
        """A ``state_dict`` saved with ``torch.save(bn.state_dict(), path)`` (``.pt``/``.pth``), or ``.npz``."""
        if path.suffix not in (".pt", ".pth"):
            return super().read_state_file(path)
        state = _torch().load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"expected a state_dict (a dict of tensors), got {type(state).__name__}")
        return {name: value.detach().to(dtype=_torch().float64).numpy() for name, value in state.items()}

    def tensor(self, array: np.ndarray, spec: LayerSpec):
        torch = _torch()
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device=self._device(spec), dtype=getattr(torch, spec.dtype))
        if self.variant == "channels_last":
            tensor = tensor.contiguous(memory_format=torch.channels_last if spec.rank == 4 else torch.channels_last_3d)
        return tensor

    def to_numpy(self, value) -> np.ndarray:
        # .copy(): a float64 CPU tensor converts without a copy and would alias live state
        return value.detach().to(device="cpu", dtype=_torch().float64).numpy().copy()

    def placement(self, spec: LayerSpec):
        if self.variant == "no_cudnn":
            return _torch().backends.cudnn.flags(enabled=False)
        return contextlib.nullcontext()

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

def numpy(t):
    return t.detach().double().cpu().numpy().copy()

layer = torch.nn.{cls}({case.channels}, {kwargs}affine={case.affine},
                       track_running_stats={self.variant != "no_running_stats"}).to(device=device, dtype=dtype)
def reset():  # every phase starts from the case's parameters and running statistics
    with torch.no_grad():
        if gamma is not None:
            layer.weight.copy_(tensor(gamma)); layer.bias.copy_(tensor(beta))
        if layer.track_running_stats:
            layer.running_mean.copy_(tensor(running_mean)); layer.running_var.copy_(tensor(running_var))
            layer.num_batches_tracked.zero_()

reset()
with torch.no_grad():
    quantities["y_eval"] = numpy(layer.eval()(data(batches[0])))
    reset()
    layer.train()
    y_train, means, variances = [], [], []
    for batch in batches:
        y_train.append(numpy(layer(data(batch))))
        if layer.track_running_stats:
            means.append(numpy(layer.running_mean)); variances.append(numpy(layer.running_var))
    quantities["y_train"] = y_train
    if means:
        quantities["running_mean"], quantities["running_var"] = means, variances
    quantities["y_eval_after"] = numpy(layer.eval()(data(batches[0])))
reset()
x = data(batches[0]).requires_grad_(True)
y = layer.train()(x)
sources = [x, layer.weight, layer.bias] if gamma is not None else [x]
for name, grad in zip(["dx", "dgamma", "dbeta"], torch.autograd.grad(y, sources, grad_outputs=data(dy))):
    quantities[name] = numpy(grad)
""" + footer()
