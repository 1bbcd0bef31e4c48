"""One training step walked at the aten level on the meta device: nothing is allocated or computed.

The step is forward, cross-entropy loss, backward and one optimizer step, as a user's training loop
runs it on a GPU: CUDA's autocast policy and attention kernels are reproduced by
:class:`~traincost.flopmodel.autocast.CudaOpMode`, and the optimizer uses the foreach kernels that
PyTorch picks on CUDA. Every aten op is recorded with its phase, owning module, shapes, dtypes and its
price from :mod:`traincost.flopmodel.formulas`; the storages it creates and frees feed
:mod:`traincost.flopmodel.memory`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.module_tracker import ModuleTracker

from traincost.errors import ModelBuildError, TraincostError, TraincostUsageError
from traincost.flopmodel import datadep, formulas, rnnplan
from traincost.flopmodel.autocast import CudaOpMode
from traincost.flopmodel.inputs import TENSOR, TrainingInputs
from traincost.flopmodel.memory import MemoryLedger, MemoryReport
from traincost.flopmodel.records import OpRecord, TensorInfo

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
OPTIMIZERS = ("sgd", "adam", "adamw")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_LOSS_MODULE = "(loss)"
_OPTIMIZER_MODULE = "(optimizer)"


@dataclass(frozen=True)
class StepConfig:
    """What one training step does besides the model: batch, precision, layout, optimizer."""

    batch_size: int
    precision: str = "fp32"
    channels_last: bool = False
    optimizer: str = "sgd"
    foreach: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise TraincostUsageError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.precision not in PRECISIONS:
            raise TraincostUsageError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise TraincostUsageError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not isinstance(self.channels_last, bool):
            raise TraincostUsageError(f"channels_last must be a bool, got {self.channels_last!r}")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST_DTYPES.get(self.precision)


@dataclass(frozen=True)
class Walk:
    """The recorded training step."""

    records: tuple[OpRecord, ...]
    config: StepConfig
    sample_shape: tuple[int, ...]
    params: int
    param_bytes: int
    memory: MemoryReport
    assumptions: tuple[str, ...] = ()   # what the walk assumed: synthetic targets, data-dependent shapes

    @property
    def unpriced_ops(self) -> dict[str, int]:
        """Op name -> count for ops the formula registry does not know (never counted as zero work)."""
        return dict(Counter(r.op for r in self.records if not r.priced))


class _ModulePath:
    """The module whose forward is running now, as a path below the root ("" for the root itself)."""

    def __init__(self, tracker: ModuleTracker, root_name: str) -> None:
        self.tracker = tracker
        self.root_name = root_name
        self.root_prefix = root_name + "."
        self.outside = _LOSS_MODULE

    def __call__(self) -> str:
        parents = [p for p in self.tracker.parents if p != "Global"]
        if not parents:
            return self.outside
        deepest = max(parents, key=lambda p: (p.count("."), len(p)))
        return "" if deepest == self.root_name else deepest.removeprefix(self.root_prefix)


class _NodeOwners(TorchFunctionMode):
    """Remembers which module created each autograd node, so backward ops can be attributed.

    Module hooks cannot tell which module a backward op belongs to (a residual block's branches
    interleave), but the autograd node running it can: ``torch._C._current_autograd_node()``.
    After each forward call, the nodes newly reachable from its outputs are given the current module.
    """

    def __init__(self, module_path: _ModulePath) -> None:
        super().__init__()
        self.module_path = module_path
        self.owners: dict[int, tuple[Any, str]] = {}  # id(node) -> (node kept alive, module)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        stack = [t.grad_fn for t in tree_flatten(out)[0]
                 if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        if stack:
            module = self.module_path()
            while stack:
                node = stack.pop()
                if node is None or id(node) in self.owners:
                    continue
                self.owners[id(node)] = (node, module)
                stack.extend(n for n, _ in node.next_functions)
        return out

    def owner(self) -> str | None:
        node = torch._C._current_autograd_node()
        found = self.owners.get(id(node)) if node is not None else None
        return found[1] if found is not None else None


class _Recorder(TorchDispatchMode):
    """Records every aten op that reaches the dispatcher below autograd."""

    def __init__(self, module_path: _ModulePath, owners: _NodeOwners, ledger: MemoryLedger) -> None:
        super().__init__()
        self.module_path = module_path
        self.owners = owners
        self.ledger = ledger
        self.phase = "forward"
        self.records: list[OpRecord] = []
        self.assumed: Counter = Counter()  # data-dependent op -> times answered by assumption

    def _module(self) -> str:
        if self.phase == "optimizer":
            return _OPTIMIZER_MODULE
        if self.phase == "backward":
            owner = self.owners.owner()
            return owner if owner is not None else _LOSS_MODULE
        return self.module_path()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        assumed, out = datadep.lookup(func, args, kwargs)
        if assumed is not None:
            self.assumed[assumed] += 1
            if name == "aten._local_scalar_dense":  # a value read on the host: no kernel to record
                return out
        else:
            fast = _FAST_META.get(func) or _FAST_FOREACH.get(func.overloadpacket)
            try:
                out = fast(*args, **kwargs) if fast is not None and _on_meta(args) else func(*args, **kwargs)
            except NotImplementedError as exc:
                if not _on_meta(args) and not any(t.is_meta for t in tree_flatten((args, kwargs))[0]
                                                  if isinstance(t, torch.Tensor)):
                    raise
                raise ModelBuildError(
                    f"{name} has no meta-device implementation (called in module {self._module() or '(model)'} "
                    f"during {self.phase}): the walk cannot run it on shapes alone; "
                    "replace the op in the model, or give it a meta kernel (torch.library.register_fake)") from exc
        datadep.carry(name, args, out)
        index = len(self.records)
        if name == "aten.convolution":
            out = _cuda_conv_layout(args, out)
        info_args = tree_map(_info, args)
        info_kwargs = tree_map(_info, kwargs)
        info_out = tree_map(_info, out)
        cost = formulas.price(name, info_args, info_kwargs, info_out)
        ins = [t for t in tree_flatten((info_args, info_kwargs))[0] if isinstance(t, TensorInfo)]
        outs = [t for t in tree_flatten(info_out)[0] if isinstance(t, TensorInfo)]
        list_arg = next((a for a in args if isinstance(a, (list, tuple)) and a
                         and isinstance(a[0], torch.Tensor)), None)
        self.records.append(OpRecord(
            index=index,
            phase=self.phase,
            module=self._module(),
            op=name,
            input_shapes=tuple(t.shape for t in ins),
            input_dtypes=tuple(_dtype_name(t.dtype) for t in ins),
            output_shapes=tuple(t.shape for t in outs),
            output_dtypes=tuple(_dtype_name(t.dtype) for t in outs),
            flops=cost.flops if cost else 0,
            bytes_read=cost.bytes_read if cost else 0,
            bytes_written=cost.bytes_written if cost else 0,
            op_class=cost.op_class if cost else "unpriced",
            n_tensors=len(list_arg) if list_arg is not None else 1,
            host_only=_host_only(args, out),
            extra=rnnplan.record_extra(name, info_args),
        ))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.ledger.observe(t, index, self.phase)
        self.ledger.tick(index)
        return out


def _is_channels_last(t: Any) -> bool:
    return (isinstance(t, torch.Tensor) and t.dim() == 4 and not t.is_contiguous()
            and t.is_contiguous(memory_format=torch.channels_last))


def _cuda_conv_layout(args: tuple, out: Any) -> Any:
    """cuDNN returns a channels_last output when the input or the weight is channels_last; the meta
    kernel returns NCHW, which would turn every activation after the first conv back to NCHW."""
    if (isinstance(out, torch.Tensor) and out.dim() == 4 and not _is_channels_last(out)
            and any(_is_channels_last(a) for a in args[:2])):
        return torch.empty(out.shape, dtype=out.dtype, device=out.device, memory_format=torch.channels_last)
    return out


def _stat_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _batch_norm_meta(input, weight, bias, running_mean, running_var, training, momentum, eps):  # noqa: ANN001
    """Outputs of ``native_batch_norm`` as CUDA returns them (fp32 statistics under autocast)."""
    stats = input.shape[1] if training else 0
    return (torch.empty_like(input), torch.empty(stats, dtype=_stat_dtype(input), device="meta"),
            torch.empty(stats, dtype=_stat_dtype(input), device="meta"))


def _batch_norm_backward_meta(grad_out, input, weight, running_mean, running_var, save_mean,  # noqa: ANN001
                              save_invstd, train, eps, output_mask):
    """Outputs of ``native_batch_norm_backward``: grad input like input, grad weight/bias per channel."""
    channels = input.shape[1]
    param_dtype = weight.dtype if weight is not None else input.dtype
    return (torch.empty_like(input) if output_mask[0] else None,
            torch.empty(channels, dtype=param_dtype, device="meta") if output_mask[1] and weight is not None else None,
            torch.empty(channels, dtype=param_dtype, device="meta") if output_mask[2] and weight is not None else None)


def _like_first(grad_output, *args, **kwargs):  # noqa: ANN001
    return torch.empty_like(grad_output)


#: Meta kernels that torch implements as slow Python decompositions (milliseconds per call), replaced
#: by their output shapes; the op is still recorded and priced exactly as it would be otherwise.
_FAST_META = {
    torch.ops.aten.native_batch_norm.default: _batch_norm_meta,
    torch.ops.aten.native_batch_norm_backward.default: _batch_norm_backward_meta,
    torch.ops.aten.threshold_backward.default: _like_first,
}


def _foreach_inplace(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
    return None


def _foreach_like(tensors, *args, **kwargs) -> list[torch.Tensor]:  # noqa: ANN001
    return [torch.empty_like(t) for t in tensors]


_aten = torch.ops.aten
#: Foreach ops (the optimizers' kernels) whose meta kernels loop in Python over the list.
_FAST_FOREACH = {
    **{op: _foreach_inplace for op in (
        _aten._foreach_add_, _aten._foreach_mul_, _aten._foreach_addcdiv_, _aten._foreach_addcmul_,
        _aten._foreach_lerp_, _aten._foreach_div_, _aten._foreach_sub_, _aten._foreach_sqrt_,
        _aten._foreach_maximum_, _aten._foreach_zero_, _aten._foreach_copy_, _aten._foreach_neg_,
        _aten._foreach_reciprocal_)},
    **{op: _foreach_like for op in (
        _aten._foreach_add, _aten._foreach_mul, _aten._foreach_div, _aten._foreach_sub,
        _aten._foreach_sqrt, _aten._foreach_neg, _aten._foreach_reciprocal, _aten._foreach_maximum)},
}


def _on_meta(args: tuple) -> bool:
    first = args[0] if args else None
    if isinstance(first, (list, tuple)):
        first = first[0] if first else None
    return isinstance(first, torch.Tensor) and first.is_meta


def _host_only(args: Any, out: Any) -> bool:
    """True when the op touches only real CPU tensors (the optimizer's step counters), not the device."""
    tensors = [t for t in tree_flatten((args, out))[0] if isinstance(t, torch.Tensor)]
    return bool(tensors) and all(t.device.type == "cpu" for t in tensors)


def _info(x: Any) -> Any:
    return TensorInfo.of(x) if isinstance(x, torch.Tensor) else x


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def make_optimizer(name: str, params: list[torch.Tensor], foreach: bool = True) -> torch.optim.Optimizer:
    """The optimizer a step uses (walked here, measured by ``calibrate.steps``): one definition for both."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=foreach)


def _fake_like(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last if channels_last and t.dim() == 4 else torch.contiguous_format
    return torch.empty(t.shape, dtype=t.dtype, device="meta", memory_format=fmt)


def walk(model: nn.Module, sample_shape: tuple[int, ...], config: StepConfig,
         input_dtype: torch.dtype = torch.float32, inputs: TrainingInputs = TENSOR) -> Walk:
    """Walk one steady-state training step of ``model`` on inputs of shape ``(batch, *sample_shape)``.

    ``model`` may live on any device (meta included); it is not modified: its parameters and buffers
    are replaced by meta tensors of the same shapes through ``torch.func.functional_call``, and it
    runs in training mode for the walk (each module's ``training`` flag is restored afterwards).
    The optimizer state is created before recording, so the recorded step is a steady-state one.
    ``inputs`` builds the forward call's arguments and the loss (:mod:`traincost.flopmodel.inputs`).
    """
    ledger = MemoryLedger()
    root_name = type(model).__name__
    params = {n: _fake_like(p, config.channels_last).requires_grad_(p.requires_grad)
              for n, p in model.named_parameters()}
    buffers = {n: _fake_like(b, config.channels_last) for n, b in model.named_buffers()}
    trainable = [p for p in params.values() if p.requires_grad]
    if not trainable:
        raise ModelBuildError("the model has no trainable parameters")
    optimizer = make_optimizer(config.optimizer, trainable, config.foreach)
    for p in trainable:  # one unrecorded step creates the optimizer state (momentum, moments)
        p.grad = torch.empty_like(p)
    optimizer.step()
    for p in trainable:
        p.grad = None
    args, kwargs = inputs.make(config.batch_size, tuple(sample_shape), input_dtype, config.channels_last)
    ledger.register(params.values(), "parameters")
    ledger.register(buffers.values(), "parameters")
    ledger.register(_optimizer_state(optimizer), "optimizer_state")
    ledger.register([t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)], "inputs")

    tracker = ModuleTracker()
    module_path = _ModulePath(tracker, root_name)
    owners = _NodeOwners(module_path)
    recorder = _Recorder(module_path, owners, ledger)
    modes = [(m, m.training) for m in model.modules()]
    # functional_call's restore can leave a weight tied across several modules (T5's embeddings and head in
    # transformers 4.x) bound to the walk's meta tensor: every module's own tensors are put back after
    held = [(m, kind, dict(getattr(m, kind))) for m in model.modules() for kind in ("_parameters", "_buffers")]
    model.train()  # a training step: dropout on, batch norm on batch statistics, whatever the caller set
    try:
        with tracker, recorder, datadep.meta_kernels_assume_all(), _fixed_host_rng():
            with owners, CudaOpMode(config.autocast_dtype):
                output = torch.func.functional_call(model, {**params, **buffers}, args, kwargs)
                loss = inputs.loss(output, config.batch_size, input_dtype)
            del output
            ledger.mark_end_of_forward(len(recorder.records))
            recorder.phase = "backward"
            if config.precision == "fp16":  # GradScaler: scale the loss, unscale and check the grads
                loss = loss * torch.full((), 65536.0, device="meta")
            loss.backward()
            del loss
            grads = [p.grad for p in trainable if p.grad is not None]
            ledger.register(grads, "gradients")
            recorder.phase = "optimizer"
            if config.precision == "fp16":
                _grad_scaler_ops(grads)
            optimizer.step()
    except TraincostError:  # bad input, a model error already named, or a formula bug: not the model's
        raise
    except Exception as exc:  # a user model that cannot run on these shapes
        raise ModelBuildError(
            f"the model failed during the training step on input {(config.batch_size, *sample_shape)}: "
            f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    finally:
        for m, training in modes:
            m.training = training
        for m, kind, tensors in held:
            getattr(m, kind).update(tensors)
    memory = ledger.report([r.phase for r in recorder.records])
    n_params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return Walk(records=tuple(recorder.records), config=config, sample_shape=tuple(sample_shape),
                params=n_params, param_bytes=param_bytes, memory=memory,
                assumptions=inputs.assumes + datadep.describe(recorder.assumed))


@contextlib.contextmanager
def _fixed_host_rng() -> Any:
    """The CPU random generator forked and seeded for the walk: a model that draws on the host in its
    forward (a detector's multi-scale training picks its image size with ``torch.empty(1).uniform_()``) walks
    the same step every time, and the caller's generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _grad_scaler_ops(grads: list[torch.Tensor]) -> None:
    """The kernels ``GradScaler.unscale_`` and ``update`` launch (its ``found_inf.item()`` sync is skipped)."""
    found_inf = torch.zeros(1, device="meta")
    inv_scale = torch.full((1,), 1.0 / 65536.0, device="meta")
    torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)
    scale = torch.full((1,), 65536.0, device="meta")
    growth = torch.zeros(1, dtype=torch.int32, device="meta")
    torch._amp_update_scale_(scale, growth, found_inf, 2.0, 0.5, 2000)


def _optimizer_state(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)]
