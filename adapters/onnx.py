"""ONNX adapters: the ``BatchNormalization`` operator, run by ONNX Runtime and by onnx's own
reference evaluator.

The adapter builds the model itself with ``onnx.helper``: one ``BatchNormalization`` node
(opset 15, the operator's newest version) whose five inputs ``X``, ``scale``, ``B``,
``input_mean`` and ``input_var`` are all graph inputs, so loading a state is feeding arrays.
``training_mode=1`` adds the outputs ``running_mean`` and ``running_var``.  Two engines run
the same models and differ only in what executes them:

* ``onnxruntime``: ``onnxruntime.InferenceSession`` on the CPU execution provider;
* ``onnx-reference``: ``onnx.reference.ReferenceEvaluator``, onnx's NumPy evaluator.

Conventions come from the operator's specification (``onnx.defs.get_schema(
"BatchNormalization").doc``): ``running_mean = input_mean * momentum + current_mean * (1 −
momentum)``, so ``momentum`` weights the old statistic (default 0.9); the running variance
is fed ``ReduceVar``, "the population variance ... (this formula does not use sample size N
− 1)"; ``Y = (X − current_mean) / sqrt(current_var + epsilon) * scale + B``, ε = 1e-5 inside
the root.  The channels are on axis 1 ("N x C x D1 x D2 ... Dn"), the only layout.

``epsilon`` and ``momentum`` are node attributes, not inputs, so each (layer, mode, ε,
momentum) is a model of its own, built and loaded once and kept (a bounded cache) on the
layer the base caches per ``LayerSpec``.  An attribute that equals the operator's default is
left out of the node, so a case that leaves ε or the momentum unset runs the runtime's own
default (which the convention probes then measure).  Attributes are 32-bit floats in the ONNX
format (``AttributeProto.f``): a float64 model runs with ε and momentum rounded to float32.

ONNX has no switch for the affine parameters: ``scale`` and ``B`` are required.  A case
without them feeds ``scale = 1`` and ``B = 0``, the constants exporters write for a layer
without affine parameters (``torch.onnx`` does), which is the same function.  Neither runtime
has a backward pass (ONNX Runtime's training build is another package), so the gradients
phase is declared unsupported.  Frameworks are imported inside functions only.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from typing import Any, ClassVar

import numpy as np

from datamodel.case import Case, CaseData
from reference import Conventions

from .base import Adapter, Capabilities, FrameworkConventions, Hyper, Inventory, LayerSpec, Variable
from .snippets import data_block, footer, header

#: The operator's newest version (``onnx.defs.get_schema("BatchNormalization").since_version``).
OPSET = 15
#: The node's inputs after X, in order, with each one's role.
PARAMETERS = {"scale": "scale", "B": "offset", "input_mean": "running_mean", "input_var": "running_variance"}
#: The TensorProto element type of each case dtype.
ELEMENT_TYPES = {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT", "float64": "DOUBLE"}
#: The operator's formulas as its specification states them (``get_schema("BatchNormalization").doc``).
SPECIFIED_FORMS = (
    "running_mean = input_mean * momentum + current_mean * (1 - momentum)",
    "running_var = input_var * momentum + current_var * (1 - momentum)",
    "Y = (X - current_mean) / sqrt(current_var + epsilon) * scale + B  (training_mode=True)",
    "Y = (X - input_mean) / sqrt(input_var + epsilon) * scale + B  (training_mode=False)",
    "current_mean = ReduceMean(X, axis=all_except_channel_index)",
    "current_var = ReduceVar(X, axis=all_except_channel_index): the population variance "
    "(this formula does not use sample size N - 1)",
)
#: Models kept per layer (one per ε and momentum in training mode): a run draws hundreds of ε.
_SESSIONS_PER_LAYER = 16


@cache
def _onnx():
    import onnx

    return onnx


@cache
def _schema_defaults() -> tuple[float, float]:
    """ε and the momentum the operator takes when the attribute is absent, as the schema stores them (float32)."""
    attributes = _onnx().defs.get_schema("BatchNormalization", OPSET).attributes
    return attributes["epsilon"].default_value.f, attributes["momentum"].default_value.f


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype onnx uses for a case dtype (``ml_dtypes.bfloat16`` for bfloat16)."""
    onnx = _onnx()
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(getattr(onnx.TensorProto, ELEMENT_TYPES[dtype])))


def build_model(spec: LayerSpec, *, training: bool, eps: float | None = None, momentum: float | None = None):
    """A checked ModelProto of one ``BatchNormalization`` node for ``spec``.

    ``eps`` and ``momentum`` ``None`` leave the attribute out (the operator's default runs);
    the momentum is written in training mode only, where the operator reads it.
    """
    onnx = _onnx()
    helper = onnx.helper
    element = getattr(onnx.TensorProto, ELEMENT_TYPES[spec.dtype])
    x_shape = ["N", spec.channels, *(f"D{i}" for i in range(1, spec.rank - 1))]
    inputs = [helper.make_tensor_value_info("X", element, x_shape)]
    inputs += [helper.make_tensor_value_info(name, element, [spec.channels]) for name in PARAMETERS]
    outputs = [helper.make_tensor_value_info("Y", element, x_shape)]
    attributes: dict[str, Any] = {}
    if eps is not None:
        attributes["epsilon"] = eps
    if training:
        outputs += [helper.make_tensor_value_info(name, element, [spec.channels]) for name in ("running_mean", "running_var")]
        attributes["training_mode"] = 1
        if momentum is not None:
            attributes["momentum"] = momentum
    node = helper.make_node("BatchNormalization", ["X", *PARAMETERS], [o.name for o in outputs], **attributes)
    graph = helper.make_graph([node], "batch_norm", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bn-conformance")
    onnx.checker.check_model(model, full_check=True)
    return model


class _Layer:
    """One ``LayerSpec``'s models, each loaded into its engine once (least recently used dropped first)."""

    def __init__(self, spec: LayerSpec, load) -> None:
        self.spec = spec
        self._load = load
        self._sessions: OrderedDict[tuple, Any] = OrderedDict()

    def session(self, training: bool, hyper: Hyper):
        default_eps, default_momentum = _schema_defaults()
        # An attribute equal to the operator's default is left out, so the runtime's own default runs.
        eps = None if hyper.eps == default_eps else hyper.eps
        momentum = None if not training or hyper.momentum == default_momentum else hyper.momentum
        key = (training, eps, momentum)
        if key in self._sessions:
            self._sessions.move_to_end(key)
        else:
            self._sessions[key] = self._load(build_model(self.spec, training=training, eps=eps, momentum=momentum))
            if len(self._sessions) > _SESSIONS_PER_LAYER:
                self._sessions.popitem(last=False)
        return self._sessions[key]


class OnnxAdapter(Adapter):
    """What both ONNX engines share: the models, conventions, inventory and snippet.

    A subclass supplies the engine: ``load(model)`` (something with ``run(None, feeds)``),
    ``version``, ``capabilities`` (the dtypes it runs) and the snippet's engine lines.
    """

    variants: ClassVar[dict[str, str]] = {}

    #: The dtypes the engine runs (those whose kernels it has).
    dtypes: ClassVar[frozenset[str]] = frozenset()

    def load(self, model) -> Any:
        raise NotImplementedError

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ranks=frozenset({2, 3, 4, 5}),
            dtypes=self.dtypes,
            devices=frozenset({"cpu"}),
            any_channel_axis=False,  # "(N x C x D1 x D2 ... Dn)": the channels are axis 1
            affine_off=True,  # scale = 1, B = 0 fed in (see the module docstring)
            cumulative=False,
            phases=frozenset({"inference", "training"}),  # no backward pass
        )

    @property
    def conventions(self) -> FrameworkConventions:
        return FrameworkConventions(
            momentum_name="momentum",
            momentum_form="old_weight",  # running_mean = input_mean * momentum + current_mean * (1 - momentum)
            momentum_default=0.9,
            eps_default=1e-5,
            default_channel_axis=1,
            reference=Conventions(eps_placement="inside", running_variance="biased", averaging="ema"),
            parameter_names={"scale": "scale", "offset": "B", "running_mean": "input_mean", "running_variance": "input_var"},
            documented_forms=SPECIFIED_FORMS,
        )

    # -- primitives: the layer holds its models; the state is the four per-channel inputs ---
    def build(self, spec: LayerSpec) -> _Layer:
        return _Layer(spec, self.load)

    def framework_defaults(self, layer) -> tuple[float, float]:
        return _schema_defaults()

    def load_state(self, layer, data: CaseData, spec: LayerSpec) -> dict[str, np.ndarray]:
        ones, zeros = np.ones(spec.channels), np.zeros(spec.channels)
        values = {
            "scale": ones if data.gamma is None else data.gamma,
            "B": zeros if data.beta is None else data.beta,
            "input_mean": data.running_mean,
            "input_var": data.running_var,
        }
        return {name: self.tensor(value, spec) for name, value in values.items()}

    def forward(self, layer, state, x, *, training: bool, hyper: Hyper):
        outputs = layer.session(training, hyper).run(None, {"X": x, **state})
        if not training:
            return outputs[0], state
        y, running_mean, running_var = outputs
        return y, {**state, "input_mean": running_mean, "input_var": running_var}

    def running_statistics(self, layer, state):
        return state["input_mean"], state["input_var"]

    def vjp(self, layer, state, x, dy, hyper: Hyper):
        raise NotImplementedError("ONNX inference runtimes have no backward pass")  # the phase is declared unsupported

    def tensor(self, array: np.ndarray, spec: LayerSpec) -> np.ndarray:
        return np.asarray(array, dtype=np.float64).astype(numpy_dtype(spec.dtype))

    def to_numpy(self, value) -> np.ndarray:
        return np.array(np.asarray(value).astype(np.float64), dtype=np.float64)

    def inventory(self, shape: tuple[int, ...], channel_axis: int, dtype: str = "float32") -> Inventory:
        """The four per-channel inputs, counted as initializers of an exported model.

        ONNX marks nothing trainable: its one figure is the initializer elements, 4·C.  The
        split follows the operator's roles: in training mode the node itself returns the new
        ``input_mean`` and ``input_var`` (state it updates), while ``scale`` and ``B`` are
        left to an optimizer (trainable).
        """
        onnx = _onnx()
        axis = channel_axis % len(shape)
        if axis != 1:
            raise ValueError(f"ONNX BatchNormalization takes the channels on axis 1 only, not axis {channel_axis}")
        spec = LayerSpec(len(shape), 1, shape[1], dtype, True, "cpu")
        model = build_model(spec, training=False)
        starting = {"scale": np.ones(spec.channels), "B": np.zeros(spec.channels),
                    "input_mean": np.zeros(spec.channels), "input_var": np.ones(spec.channels)}  # fmt: skip
        graph = model.graph
        graph.initializer.extend(onnx.numpy_helper.from_array(self.tensor(v, spec), name) for name, v in starting.items())
        kept = [i for i in graph.input if i.name == "X"]  # initializers, not inputs, as an exporter writes them
        del graph.input[:]
        graph.input.extend(kept)
        onnx.checker.check_model(model, full_check=True)
        arrays = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        variables = tuple(
            Variable(name, PARAMETERS[name], tuple(a.shape), dtype, PARAMETERS[name] in ("scale", "offset"))
            for name, a in arrays.items()
        )
        trainable = sum(v.size for v in variables if v.trainable)
        total = sum(int(a.size) for a in arrays.values())
        return Inventory(
            variables=variables,
            trainable_count=trainable,
            non_trainable_count=total - trainable,
            total_count=total,
            reported={
                "initializer elements (sum of numpy_helper.to_array(t).size over graph.initializer)": total,
                "initializers": len(arrays),
            },
        )

    # -- the snippet: shared, with the engine's lines ----------------------------------------
    SNIPPET_IMPORTS = ""
    SNIPPET_LOAD = ""

    def snippet(self, case: Case) -> str:
        settings = self.settings(case)
        spec = LayerSpec.of(case)
        default_eps, default_momentum = _schema_defaults()
        hyper = Hyper(eps=settings.eps if settings.eps_given else default_eps,
                      momentum=settings.momentum if settings.momentum_given else default_momentum)  # fmt: skip
        eps = None if hyper.eps == default_eps else hyper.eps
        momentum = None if hyper.momentum == default_momentum else hyper.momentum
        eps_attribute = f"epsilon={eps!r}, " if eps is not None else ""
        momentum_attribute = f"momentum={momentum!r}, " if momentum is not None else ""
        dims = ["N", spec.channels, *(f"D{i}" for i in range(1, spec.rank - 1))]
        return header(case, self.name) + f"""import onnx
from onnx import TensorProto, helper
{self.SNIPPET_IMPORTS}
{data_block(case.materialize())}
element = TensorProto.{ELEMENT_TYPES[case.dtype]}
dtype = helper.tensor_dtype_to_np_dtype(element)
C, x_shape = {spec.channels}, {dims!r}

def model(training):
    # One BatchNormalization node (opset {OPSET}); the four per-channel tensors are graph inputs.
    inputs = [helper.make_tensor_value_info("X", element, x_shape)]
    inputs += [helper.make_tensor_value_info(n, element, [C]) for n in ("scale", "B", "input_mean", "input_var")]
    outputs = [helper.make_tensor_value_info("Y", element, x_shape)]
    if training:
        outputs += [helper.make_tensor_value_info(n, element, [C]) for n in ("running_mean", "running_var")]
    # An attribute left out takes the operator's default (epsilon 1e-5, momentum 0.9).
    attributes = dict({eps_attribute}{momentum_attribute}training_mode=1) if training else dict({eps_attribute.rstrip(", ")})
    node = helper.make_node("BatchNormalization", ["X", "scale", "B", "input_mean", "input_var"],
                            [o.name for o in outputs], **attributes)
    proto = helper.make_model(helper.make_graph([node], "batch_norm", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", {OPSET})])
    onnx.checker.check_model(proto, full_check=True)
    return proto

{self.SNIPPET_LOAD}
def cast(a):
    return np.asarray(a, dtype=np.float64).astype(dtype)

def numpy(a):
    return np.asarray(a).astype(np.float64)

# ONNX has no switch for the affine parameters: without them, scale = 1 and B = 0.
state = {{"scale": cast(gamma if gamma is not None else np.ones(C)), "B": cast(beta if beta is not None else np.zeros(C)),
         "input_mean": cast(running_mean), "input_var": cast(running_var)}}
inference, training = load(model(False)), load(model(True))
quantities["y_eval"] = numpy(inference.run(None, {{"X": cast(batches[0]), **state}})[0])
quantities["y_train"], quantities["running_mean"], quantities["running_var"] = [], [], []
for batch in batches:
    y, state["input_mean"], state["input_var"] = training.run(None, {{"X": cast(batch), **state}})
    quantities["y_train"].append(numpy(y))
    quantities["running_mean"].append(numpy(state["input_mean"]))
    quantities["running_var"].append(numpy(state["input_var"]))
quantities["y_eval_after"] = numpy(inference.run(None, {{"X": cast(batches[0]), **state}})[0])
# No gradients: ONNX inference runtimes have no backward pass (dx, dgamma, dbeta are not observed).
""" + footer()


class OnnxRuntimeAdapter(OnnxAdapter):
    """ONNX Runtime's CPU execution provider (no bfloat16 kernel for BatchNormalization there)."""

    name = "onnxruntime"
    dtypes: ClassVar[frozenset[str]] = frozenset({"float16", "float32", "float64"})

    def version(self) -> str:
        import onnxruntime

        return f"{onnxruntime.__version__} (onnx {_onnx().__version__}, opset {OPSET})"

    def load(self, model):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread: a batch norm of at most 20,000 elements gains nothing from a pool, and
        # ORT's spinning workers would load every core of the (shared) machine.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def device_info(self) -> dict[str, str]:
        import onnxruntime

        return {**super().device_info(), "providers": "CPUExecutionProvider",
                "available_providers": ", ".join(onnxruntime.get_available_providers())}  # fmt: skip

    SNIPPET_IMPORTS = "import onnxruntime\n"
    SNIPPET_LOAD = """def load(proto):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
"""


class OnnxReferenceAdapter(OnnxAdapter):
    """``onnx.reference.ReferenceEvaluator``: the operator as onnx's NumPy code computes it."""

    name = "onnx-reference"
    dtypes: ClassVar[frozenset[str]] = frozenset({"float16", "bfloat16", "float32", "float64"})

    def version(self) -> str:
        return f"{_onnx().__version__} (ReferenceEvaluator, opset {OPSET}, numpy {np.__version__})"

    def load(self, model):
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model)

    SNIPPET_IMPORTS = "from onnx.reference import ReferenceEvaluator\n"
    SNIPPET_LOAD = """def load(proto):
    return ReferenceEvaluator(proto)
"""
