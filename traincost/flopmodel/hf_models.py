"""Hugging Face transformers from a config (``hf:path/to/config.json`` or ``hf:GPT2Config``), never the hub.

A ``config.json`` names its ``model_type`` (and usually its ``architectures``); a built-in config class
(``GPT2Config``, or its model type ``gpt2``) gives the library's defaults. ``params`` override config fields (``num_hidden_layers=2``)
and choose the head (``task``: ``causal-lm``, ``masked-lm``, ``pretraining``, ``seq2seq``; by default the
config's ``architectures``, else seq2seq for an encoder-decoder, else causal-lm, else masked-lm) and the
attention (``attn_implementation``: ``sdpa`` or ``eager``; by default transformers' own choice, SDPA where
the model supports it). The model is built with no weights and trains on its own loss: token ids of the
sequence length as inputs and as labels (plus the sentence-order label of a pre-training head and, for
seq2seq, a decoder sequence as long as the encoder's).

A mixture-of-experts block (a module with an ``experts`` child, in a config with more than one expert)
routes as a balanced router would (:mod:`traincost.flopmodel.datadep`): each expert receives
``tokens x k / experts`` tokens, at most its capacity (Switch's ``expert_capacity`` tokens per sequence).
Experts run transformers' per-expert loop (``experts_implementation="eager"`` where the version has the
choice), the path every transformers version has.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import math
from pathlib import Path
from typing import Any, Iterator

import torch

from traincost.errors import ModelBuildError, SpecError
from traincost.flopmodel import datadep
from traincost.flopmodel.inputs import TrainingInputs

PREFIX = "hf:"
TASKS = ("causal-lm", "masked-lm", "pretraining", "seq2seq")
ATTENTIONS = ("sdpa", "eager")
#: Longest default sequence: the config's ``max_position_embeddings`` (or ``n_positions``), at most this.
MAX_DEFAULT_SEQ_LEN = 2048
#: Sequence length of a config without a position limit (T5's relative positions): T5's pre-training length.
FALLBACK_SEQ_LEN = 512
_OPTIONS = ("task", "attn_implementation")
_AUTO_CLASS = {"causal-lm": "AutoModelForCausalLM", "masked-lm": "AutoModelForMaskedLM",
               "pretraining": "AutoModelForPreTraining", "seq2seq": "AutoModelForSeq2SeqLM"}
_MAPPING = {"causal-lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "masked-lm": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
            "pretraining": "MODEL_FOR_PRETRAINING_MAPPING_NAMES",
            "seq2seq": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"}
_SUFFIX_TASK = (("ForCausalLM", "causal-lm"), ("LMHeadModel", "causal-lm"), ("ForMaskedLM", "masked-lm"),
                ("ForPreTraining", "pretraining"), ("ForConditionalGeneration", "seq2seq"),
                ("ForSeq2SeqLM", "seq2seq"))
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
#: (not ``top_k``: transformers < 5 configs carry the generation default ``top_k=50``)
_TOP_K_KEYS = ("num_experts_per_tok", "moe_top_k", "num_selected_experts")
_SEQ_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length")


def transformers() -> Any:
    try:
        import transformers as tf
    except ImportError as exc:
        raise SpecError("hf: models need transformers: pip install transformers "
                        "(or pip install 'traincost[hf]')") from exc
    return tf


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """transformers' warnings off (the library never prints), its verbosity restored after."""
    logging = transformers().utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _source(name: str) -> str:
    return name.removeprefix(PREFIX).strip()


def _options(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config overrides, traincost options) of ``params``."""
    return ({k: v for k, v in params.items() if k not in _OPTIONS},
            {k: v for k, v in params.items() if k in _OPTIONS})


def load_config(name: str, params: dict[str, Any] | None = None) -> Any:
    """The transformers config of ``hf:<config.json>`` or ``hf:<ConfigClass>``, ``params`` applied (before the
    config's constructor runs, so fields derived from them follow: Switch's sparse step from its sparse layers)."""
    tf = transformers()
    source = _source(name)
    overrides, options = _options(dict(params or {}))
    if source.lower().endswith(".json") or "/" in source or "\\" in source:
        cls, data = _from_file(tf, Path(source))
    else:
        cls, data = _config_class(tf, source), {}
    with quiet():
        default = cls()
    known = set(default.to_dict()) | set(getattr(default, "attribute_map", {}) or {}) | set(data)
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known) + list(_OPTIONS), n=4, cutoff=0.6)
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise SpecError(f"{source}: {cls.__name__} has no field {key!r}{hint}")
    task = options.get("task")
    if task is not None and task not in TASKS:
        raise SpecError(f"{source}: task must be one of {', '.join(TASKS)}, got {task!r}")
    attention = options.get("attn_implementation")
    if attention is not None and attention not in ATTENTIONS:
        raise SpecError(f"{source}: attn_implementation must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
    try:
        with quiet():
            return cls.from_dict({**data, **overrides})
    except Exception as exc:
        raise SpecError(f"{source}: transformers rejects the config: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _from_file(tf: Any, path: Path) -> tuple[type, dict[str, Any]]:
    if not path.is_file():
        raise SpecError(f"transformers config file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: not a JSON config: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a transformers config is a JSON object, got {type(data).__name__}")
    model_type = data.get("model_type")
    if not model_type:
        raise SpecError(f"{path}: not a transformers config: the key 'model_type' is missing "
                        "(a model's config.json names it, e.g. \"model_type\": \"gpt2\")")
    mapping = tf.models.auto.configuration_auto.CONFIG_MAPPING_NAMES
    if model_type not in mapping:
        close = difflib.get_close_matches(str(model_type), list(mapping), n=5, cutoff=0.6)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise SpecError(f"{path}: model_type {model_type!r} is not known to transformers {tf.__version__}{hint}")
    cls = getattr(tf, mapping[model_type])
    return cls, {k: v for k, v in data.items() if k != "model_type"}


def _config_class(tf: Any, name: str) -> type:
    """``GPT2Config`` or a model type (``gpt2``): the config class, whose defaults give the model."""
    mapping = tf.models.auto.configuration_auto.CONFIG_MAPPING_NAMES
    if name in mapping:
        name = mapping[name]
    cls = getattr(tf, name, None) if name.endswith("Config") else None
    if not (isinstance(cls, type) and issubclass(cls, tf.PretrainedConfig)) or cls is tf.PretrainedConfig:
        names = sorted(set(mapping.values()) | set(mapping))
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f"; did you mean: {', '.join(PREFIX + c for c in close)}" if close else \
            "; give a config class such as hf:GPT2Config or a config.json path"
        raise SpecError(f"unknown transformers config {name!r} (transformers {tf.__version__}){hint}")
    return cls


def check_name(name: str, params: dict[str, Any]) -> None:
    """A SpecError now for a missing file, a non-config, an unknown config field or head."""
    config = load_config(name, params)
    task_of(config, params)


def task_of(config: Any, params: dict[str, Any]) -> str:
    """The head to train: ``params['task']``, else the config's ``architectures``, else a default."""
    tf = transformers()
    model_type = config.model_type
    task = params.get("task")
    if task is None:
        for arch in getattr(config, "architectures", None) or []:
            task = next((t for suffix, t in _SUFFIX_TASK if str(arch).endswith(suffix)), None)
            if task is not None:
                break
    if task is None:
        order = ("seq2seq",) if getattr(config, "is_encoder_decoder", False) else ()
        order += ("causal-lm", "masked-lm", "seq2seq")
        task = next((t for t in order if model_type in _mapping(tf, t)), None)
    if task is None or model_type not in _mapping(tf, task):
        have = [t for t in TASKS if model_type in _mapping(tf, t)]
        raise SpecError(f"{PREFIX}{model_type}: transformers has no {task or 'language-model'} head for "
                        f"{model_type!r}" + (f"; heads it has: {', '.join(have)}" if have else ""))
    return task


def _mapping(tf: Any, task: str) -> dict[str, Any]:
    return getattr(tf.models.auto.modeling_auto, _MAPPING[task])


def default_seq_len(config: Any) -> tuple[int, str]:
    """(sequence length, why): the config's position limit, at most :data:`MAX_DEFAULT_SEQ_LEN`."""
    for key in _SEQ_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            seq = min(value, MAX_DEFAULT_SEQ_LEN)
            capped = f", capped at {MAX_DEFAULT_SEQ_LEN}" if value > MAX_DEFAULT_SEQ_LEN else ""
            return seq, f"the config's {key} {value}{capped}"
    return FALLBACK_SEQ_LEN, f"the config has no position limit: {FALLBACK_SEQ_LEN}"


def build(name: str, params: dict[str, Any]) -> Any:
    """The model with no weights (on the device in effect, meta when the caller asks), MoE scopes hooked."""
    tf = transformers()
    config = load_config(name, params)
    task = task_of(config, params)
    kwargs: dict[str, Any] = {}
    if params.get("attn_implementation"):
        kwargs["attn_implementation"] = params["attn_implementation"]
    if _experts(config) > 1 and hasattr(tf.PreTrainedModel, "set_experts_implementation"):
        kwargs["experts_implementation"] = "eager"
    auto = getattr(tf, _AUTO_CLASS[task])
    try:
        with quiet():
            model = auto.from_config(config, **kwargs)
            getattr(model, "loss_function", None)  # its one-time notice, silenced here
    except ValueError as exc:
        if "attn_implementation" in kwargs and "attention" in str(exc):
            raise SpecError(f"{_source(name)}: {type(config).__name__} does not support "
                            f"attn_implementation={kwargs['attn_implementation']!r} in transformers "
                            f"{tf.__version__}; use {', '.join(a for a in ATTENTIONS if a != kwargs['attn_implementation'])}"
                            ) from exc
        raise
    hook_routing(model, config)
    return model


def _experts(config: Any) -> int:
    for key in _EXPERT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _top_k(config: Any) -> int:
    for key in _TOP_K_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def tokens_per_expert(config: Any, batch: int, seq_len: int) -> int:
    """Rows each expert's FFN sees under balanced routing of ``batch`` sequences of ``seq_len`` tokens:
    ``ceil(seq_len x k / experts)`` per sequence, at most ``expert_capacity`` (Switch, per sequence)."""
    experts, k = _experts(config), _top_k(config)
    per_seq = math.ceil(seq_len * k / experts)
    capacity = getattr(config, "expert_capacity", None)
    if isinstance(capacity, int) and capacity > 0:
        per_seq = min(per_seq, capacity)
    return batch * per_seq


def hook_routing(model: Any, config: Any) -> None:
    """Open a :class:`datadep.Routing` scope around every MoE block's forward (a module with an ``experts``
    child), sized from the block's input: ``(batch, seq, hidden)`` or ``(tokens, hidden)``."""
    experts = _experts(config)
    if experts <= 1:
        return
    k = _top_k(config)
    for block in model.modules():
        if not isinstance(getattr(block, "experts", None), torch.nn.Module):
            continue

        def enter(module: Any, args: tuple, kwargs: dict) -> None:
            x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            if x is None or x.dim() < 2:
                return
            batch, seq = (x.shape[0], x.shape[1]) if x.dim() == 3 else (1, x.numel() // x.shape[-1])
            rows = tokens_per_expert(config, batch, seq)
            capacity = getattr(config, "expert_capacity", None)
            cap = f", capacity {capacity} tokens per sequence" if isinstance(capacity, int) else ""
            scope = datadep.Routing(experts, k, rows, f"{datadep.ROUTING_PREFIX}balanced, top-{k} of {experts} experts{cap}, "
                                                      f"{rows} tokens per expert of {batch * seq}")
            module._traincost_routing = scope
            datadep.enter(scope)

        def leave(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            scope = getattr(module, "_traincost_routing", None)
            if scope is not None:
                datadep.leave(scope)
                module._traincost_routing = None

        block.register_forward_pre_hook(enter, with_kwargs=True)
        block.register_forward_hook(leave, with_kwargs=True, always_call=True)


def training_inputs(name: str, params: dict[str, Any], seq_len: int | None) -> TrainingInputs:
    """Token ids and the labels the model's own loss takes; ``seq_len`` None: :func:`default_seq_len`."""
    config = load_config(name, params)
    task = task_of(config, params)
    tf = transformers()
    forward = inspect.signature(getattr(tf, _mapping(tf, task)[config.model_type]).forward).parameters
    if seq_len is None:
        seq, why = default_seq_len(config)
        length = f"{seq} tokens per sequence ({why}; seq_len to change)"
    else:
        length = f"{seq_len} tokens per sequence"
    vocab = getattr(config, "vocab_size", None)

    def make(batch: int, sample_shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool):
        if len(sample_shape) != 1:
            raise SpecError(f"{name}: a transformer's input shape is (seq_len,), got {sample_shape!r}")
        ids = torch.zeros((batch, *sample_shape), dtype=dtype, device="meta")
        kwargs: dict[str, Any] = {"input_ids": ids, "labels": ids}
        if task == "seq2seq":
            kwargs["decoder_input_ids"] = ids
        for label in ("next_sentence_label", "sentence_order_label"):
            if task == "pretraining" and label in forward:
                kwargs[label] = torch.zeros((batch,), dtype=dtype, device="meta")
        return (), kwargs

    def loss(output: Any, batch: int, input_dtype: torch.dtype) -> torch.Tensor:
        value = getattr(output, "loss", None)
        if not isinstance(value, torch.Tensor):
            raise ModelBuildError(f"{name}: the model returned no loss for its labels")
        return value

    model_class = getattr(tf, _mapping(tf, task)[config.model_type])
    attention = params.get("attn_implementation") or (
        "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager") + " (transformers' default)"
    assumes = [f"{task} head, {length}, the model's own loss on labels = the inputs"
               + (f" over a {vocab}-token vocabulary" if vocab else ""),
               f"attention: {attention}"]
    if task == "seq2seq":
        assumes.append("the decoder sequence is as long as the encoder's")
    if _experts(config) > 1:
        assumes.append("MoE experts run transformers' per-expert loop")
    return TrainingInputs("hf-" + task, make, loss, tuple(assumes))
