"""Validate and execute API-format ComfyUI prompts against a set of V3 node classes.

This enforces the contract of ComfyUI 0.3.64's ``execution.validate_prompt`` /
``validate_inputs`` and its classic cache, so a graph that passes here behaves the same in
the server:

* every node's ``class_type`` exists; the prompt has at least one output node;
* required inputs are present; links are ``[node_id, slot]`` to an existing output whose type
  matches the input's type (``*`` and comma-separated unions as ComfyUI treats them);
* widget values convert to INT/FLOAT/STRING/BOOLEAN, lie within ``min``/``max`` and combo
  choices, unless the node's ``validate_inputs`` takes that input itself;
* ``validate_inputs`` runs with the constant inputs (links arrive as ``None``) and a non-True
  result is a ``custom_validation_failed`` error;
* only output nodes and their ancestors run; the returned tuple must have one value per
  declared output, and native types (IMAGE, MASK, AUDIO, LATENT) must have their layouts;
* a node is re-executed only when its signature changes: its class, its constant inputs, the
  signatures of its ancestors and its ``fingerprint_inputs`` result (compared by value, so NaN
  always re-runs), as ComfyUI's classic cache does.
Errors name the node id, its class and the input.
"""
from __future__ import annotations

import asyncio
import inspect
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

_WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


class PromptValidationError(Exception):
    """The prompt would be rejected by ComfyUI's ``/prompt``; ``errors`` has one entry per problem."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("\n".join(e["text"] for e in errors))


class NodeExecutionError(Exception):
    """A node raised while executing (ComfyUI reports this as ``execution_error``)."""

    def __init__(self, node_id: str, class_type: str, original: BaseException):
        self.node_id, self.class_type, self.original = node_id, class_type, original
        super().__init__(f"node {node_id} ({class_type}) failed: {type(original).__name__}: {original}")


@dataclass
class RunResult:
    outputs: dict[str, tuple]  # node id -> returned values
    ui: dict[str, dict]  # node id -> ui dict (what /history reports under "outputs")
    executed: list[str]  # node ids that ran this time, in order
    cached: list[str]  # node ids whose outputs were reused


@dataclass
class _Input:
    name: str
    io_type: Any
    required: bool
    options: dict
    takes_validation: bool = False


@dataclass
class _NodeSpec:
    cls: type
    inputs: dict[str, _Input]
    outputs: list[Any]
    output_node: bool
    hidden: list
    not_idempotent: bool
    validate_args: Optional[list[str]] = None  # None: no custom validate_inputs
    validate_kwargs: bool = False


def _has_override(cls: type, name: str) -> bool:
    """True if ``name`` is defined by the node class (not inherited from the V3 base)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__module__ != "comfy_api.latest._io"
    return False


def node_spec(cls: type) -> _NodeSpec:
    """Read a V3 node's schema into the form the validator needs."""
    schema = cls.GET_SCHEMA()
    inputs = {}
    for inp in schema.inputs or []:
        options = dict(inp.as_dict())
        options.pop("optional", None)
        inputs[inp.id] = _Input(inp.id, inp.get_io_type(), not inp.optional, options)
    spec = _NodeSpec(cls, inputs, [o.io_type for o in schema.outputs or []], bool(schema.is_output_node),
                     list(schema.hidden or []), bool(schema.not_idempotent))
    if _has_override(cls, "validate_inputs"):
        argspec = inspect.getfullargspec(cls.validate_inputs)
        spec.validate_args = [a for a in argspec.args if a != "cls"]
        spec.validate_kwargs = argspec.varkw is not None
        for name in spec.validate_args:
            if name in inputs:
                inputs[name].takes_validation = True
        if spec.validate_kwargs:
            for inp in inputs.values():
                inp.takes_validation = True
    return spec


def types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's link type rule: equal, ``*`` on either side, or overlapping ``A,B`` unions."""
    if received == expected or "*" in (received, expected):
        return True
    if isinstance(received, str) and isinstance(expected, str):
        return bool(set(received.split(",")) & set(expected.split(",")))
    return False


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _error(node_id: str, class_type: str, kind: str, message: str, input_name: Optional[str] = None) -> dict:
    where = f"node {node_id} ({class_type})" + (f" input '{input_name}'" if input_name else "")
    return {"node_id": node_id, "class_type": class_type, "type": kind, "input_name": input_name,
            "message": message, "text": f"{where}: {kind}: {message}"}


class Executor:
    """Runs prompts for one set of node classes, keeping ComfyUI's per-node output cache."""

    def __init__(self, node_classes: dict[str, type], extra_data: Optional[dict] = None):
        self.node_classes = dict(node_classes)
        self.specs = {name: node_spec(cls) for name, cls in node_classes.items()}
        self.extra_data = extra_data or {}
        self._cache: dict[str, tuple[Any, tuple, Optional[dict]]] = {}

    # ---- validation ---------------------------------------------------------------------
    def validate(self, prompt: dict) -> list[str]:
        """Check the whole prompt; return the output node ids, or raise PromptValidationError.

        Schemas are read again on every call, as ComfyUI calls ``INPUT_TYPES()`` per validation:
        a file uploaded since the last run is a valid choice now.
        """
        self.specs = {name: node_spec(cls) for name, cls in self.node_classes.items()}
        for node_id, node in prompt.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            if class_type is None:
                raise PromptValidationError([_error(node_id, "?", "invalid_prompt",
                                                    "node has no class_type")])
            if class_type not in self.specs:
                raise PromptValidationError([_error(node_id, class_type, "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.")])
        outputs = [nid for nid, n in prompt.items() if self.specs[n["class_type"]].output_node]
        if not outputs:
            raise PromptValidationError([_error("-", "-", "prompt_no_outputs", "Prompt has no outputs")])
        errors: list[dict] = []
        seen: set[str] = set()
        for nid in outputs:
            self._validate_node(prompt, nid, errors, seen)
        if errors:
            raise PromptValidationError(errors)
        return outputs

    def _validate_node(self, prompt: dict, node_id: str, errors: list[dict], seen: set[str]) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        node = prompt[node_id]
        class_type = node["class_type"]
        spec = self.specs[class_type]
        # Inputs a node does not declare are ignored, as ComfyUI does (the frontend sends e.g. audioUI).
        given = node.get("inputs", {})
        for name, inp in spec.inputs.items():
            if name not in given:
                if inp.required:
                    errors.append(_error(node_id, class_type, "required_input_missing",
                                         "Required input is missing", name))
                continue
            value = given[name]
            if isinstance(value, list):
                self._validate_link(prompt, node_id, class_type, inp, value, errors, seen)
            else:
                self._validate_constant(node_id, class_type, inp, value, given, errors)
        if spec.validate_args is not None:
            self._run_custom_validation(node_id, class_type, spec, given, errors)

    def _validate_link(self, prompt, node_id, class_type, inp, value, errors, seen) -> None:
        if not _is_link(value) or value[0] not in prompt:
            errors.append(_error(node_id, class_type, "bad_linked_input",
                                 f"Bad linked input {value!r}, must be [node_id, slot_index] of an existing node",
                                 inp.name))
            return
        source_type = prompt[value[0]]["class_type"]
        source_outputs = self.specs[source_type].outputs
        if not 0 <= value[1] < len(source_outputs):
            errors.append(_error(node_id, class_type, "bad_linked_input",
                                 f"node {value[0]} ({source_type}) has no output slot {value[1]}", inp.name))
            return
        received = source_outputs[value[1]]
        expected = inp.io_type if inp.io_type != "COMBO" else "COMBO"
        if not types_match(received, expected):
            errors.append(_error(node_id, class_type, "return_type_mismatch",
                                 f"linked output of node {value[0]} ({source_type}) has type {received}, "
                                 f"input expects {expected}", inp.name))
            return
        self._validate_node(prompt, value[0], errors, seen)

    def _validate_constant(self, node_id, class_type, inp, value, given, errors) -> None:
        if isinstance(value, dict) and "__value__" in value:
            value = given[inp.name] = value["__value__"]
        kind = inp.io_type
        try:
            if kind == "INT":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError("not a whole number")
                value = int(value)
            elif kind == "FLOAT":
                value = float(value)
            elif kind == "STRING":
                value = str(value)
            elif kind == "BOOLEAN":
                value = bool(value)
        except (TypeError, ValueError) as e:
            errors.append(_error(node_id, class_type, "invalid_input_type",
                                 f"Failed to convert an input value to a {kind} value: {value!r} ({e})", inp.name))
            return
        given[inp.name] = value
        if inp.takes_validation:
            return
        if "min" in inp.options and value < inp.options["min"]:
            errors.append(_error(node_id, class_type, "value_smaller_than_min",
                                 f"Value {value} smaller than min of {inp.options['min']}", inp.name))
        elif "max" in inp.options and value > inp.options["max"]:
            errors.append(_error(node_id, class_type, "value_bigger_than_max",
                                 f"Value {value} bigger than max of {inp.options['max']}", inp.name))
        choices = kind if isinstance(kind, list) else inp.options.get("options") if kind == "COMBO" else None
        if choices is not None and value not in choices:
            shown = choices if len(choices) <= 20 else f"(list of length {len(choices)})"
            errors.append(_error(node_id, class_type, "value_not_in_list",
                                 f"'{value}' not in {shown}", inp.name))

    def _run_custom_validation(self, node_id, class_type, spec, given, errors) -> None:
        # Constants are passed as given; links arrive as None (their values do not exist yet).
        args = {name: (None if isinstance(given.get(name), list) else given.get(name))
                for name in spec.inputs if spec.validate_kwargs or name in spec.validate_args}
        try:
            result = spec.cls.validate_inputs(**args)
            if inspect.isawaitable(result):
                result = asyncio.run(result)
        except Exception as e:  # ComfyUI reports this as exception_during_validation
            errors.append(_error(node_id, class_type, "exception_during_validation", str(e)))
            return
        if result is not True:
            # ComfyUI 0.3.64 (execution.validate_inputs) adds the message once per constant input the
            # method takes, so a method taking three inputs shows its message three times.
            for name in [n for n in args if n in given and not isinstance(given[n], list)] or [None]:
                errors.append(_error(node_id, class_type, "custom_validation_failed",
                                     "Custom validation failed for node" + (f" - {result}" if result is not False else ""),
                                     name))

    # ---- execution ----------------------------------------------------------------------
    def run(self, prompt: dict) -> RunResult:
        """Validate, then execute output nodes and their ancestors, reusing cached outputs."""
        import copy

        prompt = copy.deepcopy(prompt)
        outputs = self.validate(prompt)
        result = RunResult({}, {}, [], [])
        signatures: dict[str, Any] = {}
        for nid in outputs:
            self._execute(prompt, nid, result, signatures)
        return result

    def _signature(self, prompt, node_id, signatures) -> Any:
        if node_id in signatures:
            return signatures[node_id]
        node = prompt[node_id]
        spec = self.specs[node["class_type"]]
        parts: list[Any] = [node["class_type"], self._fingerprint(spec, node["inputs"])]
        if spec.not_idempotent:
            parts.append(node_id)
        for key in sorted(node["inputs"]):
            value = node["inputs"][key]
            if _is_link(value):
                parts.append((key, self._signature(prompt, value[0], signatures), value[1]))
            else:
                parts.append((key, repr(value)))
        signatures[node_id] = tuple(parts)
        return signatures[node_id]

    def _fingerprint(self, spec: _NodeSpec, inputs: dict) -> Any:
        if not _has_override(spec.cls, "fingerprint_inputs"):
            return None
        constants = {k: v for k, v in inputs.items() if k in spec.inputs and not _is_link(v)}
        try:
            value = spec.cls.fingerprint_inputs(**constants)
        except Exception:
            return float("nan")
        if isinstance(value, float) and math.isnan(value):
            return float("nan")  # a fresh NaN never equals the cached one
        return repr(value)

    def _execute(self, prompt, node_id, result: RunResult, signatures) -> tuple:
        if node_id in result.outputs:
            return result.outputs[node_id]
        node = prompt[node_id]
        class_type = node["class_type"]
        spec = self.specs[class_type]
        signature = self._signature(prompt, node_id, signatures)
        cached = self._cache.get(node_id)
        if cached is not None and _same(cached[0], signature):
            result.outputs[node_id] = cached[1]
            if cached[2] is not None:
                result.ui[node_id] = cached[2]
            result.cached.append(node_id)
            return cached[1]
        kwargs = {}
        for name, value in node["inputs"].items():
            if name not in spec.inputs:
                continue
            if _is_link(value):
                kwargs[name] = self._execute(prompt, value[0], result, signatures)[value[1]]
            else:
                kwargs[name] = value
        values, ui = self._call(node_id, class_type, spec, kwargs, prompt)
        self._cache[node_id] = (signature, values, ui)
        result.outputs[node_id] = values
        if ui is not None:
            result.ui[node_id] = ui
        result.executed.append(node_id)
        return values

    def _call(self, node_id, class_type, spec, kwargs, prompt) -> tuple[tuple, Optional[dict]]:
        hidden = {"UNIQUE_ID": node_id, "PROMPT": prompt, "EXTRA_PNGINFO": self.extra_data.get("extra_pnginfo")}
        clone = spec.cls.PREPARE_CLASS_CLONE(hidden)
        try:
            out = clone.execute(**kwargs)
            if inspect.isawaitable(out):
                out = asyncio.run(out)
        except Exception as e:
            raise NodeExecutionError(node_id, class_type, e) from e
        values, ui = _normalise_output(out)
        if len(values) != len(spec.outputs):
            raise NodeExecutionError(node_id, class_type, TypeError(
                f"returned {len(values)} values but declares {len(spec.outputs)} outputs {spec.outputs}"))
        for index, (io_type, value) in enumerate(zip(spec.outputs, values)):
            problem = check_native_type(io_type, value)
            if problem:
                raise NodeExecutionError(node_id, class_type, TypeError(f"output {index} ({io_type}): {problem}"))
        if ui is not None and hasattr(ui, "as_dict"):
            ui = ui.as_dict()
        return values, ui


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _normalise_output(out: Any) -> tuple[tuple, Any]:
    if out is None:
        return (), None
    if isinstance(out, tuple):
        return out, None
    if isinstance(out, dict):
        return tuple(out.get("result", ())), out.get("ui")
    if hasattr(out, "args") and hasattr(out, "ui"):  # NodeOutput
        return tuple(out.args), out.ui
    raise TypeError(f"Invalid return type from node: {type(out)}")


def check_native_type(io_type: Any, value: Any) -> Optional[str]:
    """Describe how ``value`` breaks ComfyUI's layout for ``io_type``; ``None`` if it fits."""
    if io_type == "IMAGE":
        if not isinstance(value, torch.Tensor) or value.dim() != 4 or value.shape[-1] != 3 \
                or not value.is_floating_point():
            return f"IMAGE must be a float tensor [B, H, W, 3], got {_describe(value)}"
    elif io_type == "MASK":
        if not isinstance(value, torch.Tensor) or value.dim() not in (2, 3):
            return f"MASK must be a tensor [B, H, W], got {_describe(value)}"
    elif io_type == "AUDIO":
        if not isinstance(value, dict) or not isinstance(value.get("waveform"), torch.Tensor) \
                or value["waveform"].dim() != 3 or not isinstance(value.get("sample_rate"), int):
            return f"AUDIO must be {{'waveform': [B, C, S], 'sample_rate': int}}, got {_describe(value)}"
    elif io_type == "LATENT":
        if not isinstance(value, dict) or not isinstance(value.get("samples"), torch.Tensor):
            return f"LATENT must be {{'samples': tensor}}, got {_describe(value)}"
    return None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {value.dtype}"
    if isinstance(value, dict):
        return f"dict with keys {sorted(value)}"
    return type(value).__name__
