"""One training step walked at the aten level on the meta device: nothing is allocated or computed.

The step is forward, cross-entropy loss, backward and one optimizer step, as a user's training loop
runs it on a GPU: CUDA's autocast policy and attention kernels are reproduced by
:class:`~traincost.flopmodel.autocast.CudaOpMode`, and the optimizer uses the foreach kernels that
PyTorch picks on CUDA. Every aten op is recorded with its phase, owning module, shapes, dtypes and its
price from :mod:`traincost.flopmodel.formulas`; the storages it creates and frees feed
:mod:`traincost.flopmodel.memory`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.module_tracker import ModuleTracker

from traincost.errors import ModelBuildError, TraincostError, TraincostUsageError
from traincost.flopmodel import formulas
from traincost.flopmodel.autocast import CudaOpMode
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

    @property
    def unpriced_ops(self) -> dict[str, int]:
        """Op name -> count for ops the formula registry does not know (never counted as zero work)."""
        return dict(Counter(r.op for r in self.records if not r.priced))


class _Recorder(TorchDispatchMode):
    """Records every aten op that reaches the dispatcher below autograd."""

    def __init__(self, tracker: ModuleTracker, ledger: MemoryLedger, root_name: str) -> None:
        super().__init__()
        self.tracker = tracker
        self.ledger = ledger
        self.root_prefix = root_name + "."
        self.root_name = root_name
        self.phase = "forward"
        self.outside_module = _LOSS_MODULE
        self.records: list[OpRecord] = []

    def _module(self) -> str:
        parents = [p for p in self.tracker.parents if p != "Global"]
        if not parents:
            return self.outside_module
        deepest = max(parents, key=lambda p: (p.count("."), len(p)))
        if deepest == self.root_name:
            return ""
        return deepest.removeprefix(self.root_prefix)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        index = len(self.records)
        name = str(func.overloadpacket)
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
            module=self._module() if self.phase != "optimizer" else _OPTIMIZER_MODULE,
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


def _host_only(args: Any, out: Any) -> bool:
    """True when the op touches only real CPU tensors (the optimizer's step counters), not the device."""
    tensors = [t for t in tree_flatten((args, out))[0] if isinstance(t, torch.Tensor)]
    return bool(tensors) and all(t.device.type == "cpu" for t in tensors)


def _info(x: Any) -> Any:
    return TensorInfo.of(x) if isinstance(x, torch.Tensor) else x


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _make_optimizer(name: str, params: list[torch.Tensor], foreach: bool) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=foreach)


def _fake_like(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last if channels_last and t.dim() == 4 else torch.contiguous_format
    return torch.empty(t.shape, dtype=t.dtype, device="meta", memory_format=fmt)


def _loss(output: Any, batch_size: int) -> torch.Tensor:
    """Cross-entropy summed over every (batch, classes, ...) tensor the model returns."""
    leaves = [t for t in tree_flatten(output)[0]
              if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[0] == batch_size
              and t.is_floating_point()]
    if not leaves:
        raise ModelBuildError(
            "the model returned no floating-point tensor of shape (batch, classes, ...) to train on")
    total = None
    for logits in leaves:
        target = torch.zeros((logits.shape[0], *logits.shape[2:]), dtype=torch.long, device="meta")
        term = nn.functional.cross_entropy(logits, target)
        total = term if total is None else total + term
    return total


def walk(model: nn.Module, sample_shape: tuple[int, ...], config: StepConfig) -> Walk:
    """Walk one steady-state training step of ``model`` on inputs of shape ``(batch, *sample_shape)``.

    ``model`` may live on any device (meta included); it is not modified: its parameters and buffers
    are replaced by meta tensors of the same shapes through ``torch.func.functional_call``, and it
    runs in training mode for the walk (each module's ``training`` flag is restored afterwards).
    The optimizer state is created before recording, so the recorded step is a steady-state one.
    """
    ledger = MemoryLedger()
    root_name = type(model).__name__
    params = {n: _fake_like(p, config.channels_last).requires_grad_(p.requires_grad)
              for n, p in model.named_parameters()}
    buffers = {n: _fake_like(b, config.channels_last) for n, b in model.named_buffers()}
    trainable = [p for p in params.values() if p.requires_grad]
    if not trainable:
        raise ModelBuildError("the model has no trainable parameters")
    optimizer = _make_optimizer(config.optimizer, trainable, config.foreach)
    for p in trainable:  # one unrecorded step creates the optimizer state (momentum, moments)
        p.grad = torch.empty_like(p)
    optimizer.step()
    for p in trainable:
        p.grad = None
    fmt = torch.channels_last if config.channels_last and len(sample_shape) == 3 else torch.contiguous_format
    x = torch.empty((config.batch_size, *sample_shape), device="meta", memory_format=fmt)
    ledger.register(params.values(), "parameters")
    ledger.register(buffers.values(), "parameters")
    ledger.register(_optimizer_state(optimizer), "optimizer_state")
    ledger.register([x], "inputs")

    tracker = ModuleTracker()
    recorder = _Recorder(tracker, ledger, root_name)
    modes = [(m, m.training) for m in model.modules()]
    model.train()  # a training step: dropout on, batch norm on batch statistics, whatever the caller set
    try:
        with tracker, recorder:
            recorder.outside_module = _LOSS_MODULE
            with CudaOpMode(config.autocast_dtype):
                output = torch.func.functional_call(model, {**params, **buffers}, (x,))
                loss = _loss(output, config.batch_size)
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
    memory = ledger.report([r.phase for r in recorder.records])
    n_params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return Walk(records=tuple(recorder.records), config=config, sample_shape=tuple(sample_shape),
                params=n_params, param_bytes=param_bytes, memory=memory)


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
