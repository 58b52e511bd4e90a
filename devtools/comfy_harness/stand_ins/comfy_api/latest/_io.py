"""Stand-in for ``comfy_api.latest._io``: the V3 node schema.

Covers what a node pack uses: the ``comfytype`` type registry and ``Custom``, typed inputs
with their widget options, outputs, ``Hidden``, ``Schema`` (with ComfyUI's conversion to the
classic ``INPUT_TYPES``/``RETURN_TYPES`` view that the executor validates against),
``ComfyNode`` and ``NodeOutput``. Semantics follow ComfyUI 0.3.64:

* an input's V1 entry is ``(io_type, options)`` under ``required`` or ``optional``; options
  omit ``None`` values; a combo's io_type in the V1 view is ``"COMBO"`` with ``options``;
* outputs without an id get ``_<index>_<io_type>_``; output nodes get the ``prompt`` and
  ``extra_pnginfo`` hidden inputs;
* ``execute`` may return ``NodeOutput``, a tuple, a dict with ``result``/``ui``, or ``None``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


def _pruned(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


# ---- inputs and outputs -------------------------------------------------------------------

class Input:
    """A socket input (no widget)."""

    Parent: Any = None

    def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                 lazy: bool = None, extra_dict: dict = None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict or {}

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def get_io_type(self):
        return self.io_type

    def as_dict(self) -> dict:
        return _pruned({"display_name": self.display_name, "optional": self.optional,
                        "tooltip": self.tooltip, "lazy": self.lazy}) | _pruned(self.extra_dict)


class WidgetInput(Input):
    """An input with a widget (number, text, combo...) and a default."""

    def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                 lazy: bool = None, default: Any = None, socketless: bool = None, widget_type: str = None,
                 force_input: bool = None, extra_dict: dict = None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def get_io_type(self):
        return self.widget_type if self.widget_type is not None else self.io_type

    def as_dict(self) -> dict:
        return super().as_dict() | _pruned({"default": self.default, "socketless": self.socketless,
                                            "widgetType": self.widget_type, "forceInput": self.force_input})


class Output:
    """A node output."""

    Parent: Any = None

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list: bool = False):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def get_io_type(self):
        return self.io_type

    def as_dict(self) -> dict:
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip,
                        "is_output_list": self.is_output_list})


class ComfyTypeI:
    """A type that only has an Input class."""

    io_type: str = None
    Type = Any

    class Input(Input):
        pass


class ComfyTypeIO(ComfyTypeI):
    """A type with Input and Output classes."""

    class Output(Output):
        pass


def comfytype(io_type: str):
    """Bind ``io_type`` to a type class and give it its own Input/Output subclasses."""

    def decorate(cls):
        if not issubclass(cls, ComfyTypeI):
            cls = type(cls.__name__, (cls, ComfyTypeIO), {})
        cls.io_type = io_type
        for name in ("Input", "Output"):
            base = getattr(cls, name, None)
            if base is not None:
                setattr(cls, name, type(base.__name__, (base,), {"Parent": cls}))
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A socket type defined by a pack (e.g. ``Custom("POSE_GUIDANCE")``)."""

    @comfytype(io_type=io_type)
    class CustomType(ComfyTypeIO):
        pass

    return CustomType


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, default: bool = None, label_on: str = None, label_off: str = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.label_on, self.label_off = label_on, label_off

        def as_dict(self) -> dict:
            return super().as_dict() | _pruned({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, default: int = None, min: int = None, max: int = None, step: int = None,
                     control_after_generate: bool = None, display_mode: NumberDisplay = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _pruned({
                "min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate,
                "display": self.display_mode.value if self.display_mode else None})


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, default: float = None, min: float = None, max: float = None,
                     step: float = None, round: float = None, display_mode: NumberDisplay = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.round = min, max, step, round
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _pruned({
                "min": self.min, "max": self.max, "step": self.step, "round": self.round,
                "display": self.display_mode})


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, multiline: bool = False, placeholder: str = None, default: str = None,
                     dynamic_prompts: bool = None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

        def as_dict(self) -> dict:
            return super().as_dict() | _pruned({"multiline": self.multiline, "placeholder": self.placeholder,
                                                "dynamicPrompts": self.dynamic_prompts})


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, options: list = None, display_name: str = None, optional: bool = False,
                     tooltip: str = None, lazy: bool = None, default: Any = None,
                     control_after_generate: bool = None, upload: UploadType = None,
                     image_folder: FolderType = None, remote: Any = None, socketless: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict:
            return super().as_dict() | _pruned({
                "multiselect": self.multiselect, "options": self.options,
                "control_after_generate": self.control_after_generate,
                **({self.upload.value: True} if self.upload is not None else {}),
                "image_folder": self.image_folder.value if self.image_folder else None})


@comfytype(io_type="IMAGE")
class Image(ComfyTypeIO):
    pass


@comfytype(io_type="MASK")
class Mask(ComfyTypeIO):
    pass


@comfytype(io_type="LATENT")
class Latent(ComfyTypeIO):
    pass


@comfytype(io_type="AUDIO")
class Audio(ComfyTypeIO):
    pass


@comfytype(io_type="VIDEO")
class Video(ComfyTypeIO):
    pass


@comfytype(io_type="VAE")
class Vae(ComfyTypeIO):
    pass


@comfytype(io_type="MODEL")
class Model(ComfyTypeIO):
    pass


@comfytype(io_type="CLIP_VISION")
class ClipVision(ComfyTypeIO):
    pass


@comfytype(io_type="*")
class AnyType(ComfyTypeIO):
    pass


# ---- hidden inputs ---------------------------------------------------------------------------

class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


@dataclass
class HiddenHolder:
    """The hidden values a node asked for, set on the class clone that executes."""

    unique_id: Optional[str] = None
    prompt: Any = None
    extra_pnginfo: Any = None
    dynprompt: Any = None
    auth_token_comfy_org: Optional[str] = None
    api_key_comfy_org: Optional[str] = None

    @classmethod
    def from_dict(cls, d: dict) -> "HiddenHolder":
        return cls(**{h.name: d.get(h.value) for h in Hidden})


# ---- schema ---------------------------------------------------------------------------------

@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = None
    outputs: list = None
    hidden: list = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self) -> None:
        """Input and output ids must be unique, within and across the two lists."""
        ins = [i.id for i in self.inputs or []]
        outs = [o.id for o in self.outputs or []]
        issues = []
        for label, ids in (("Input", ins), ("Output", outs)):
            dup = [k for k, n in Counter(ids).items() if n > 1]
            if dup:
                issues.append(f"{label} ids must be unique, but {dup} are not.")
        both = set(ins) & set(outs)
        if both:
            issues.append(f"Ids must be unique between inputs and outputs, but {both} are not.")
        if issues:
            raise ValueError("\n".join(issues))

    def finalize(self) -> None:
        """Output nodes get prompt/extra_pnginfo; outputs without an id get a default one."""
        if self.is_output_node:
            self.hidden = list(self.hidden or [])
            for h in (Hidden.prompt, Hidden.extra_pnginfo):
                if h not in self.hidden:
                    self.hidden.append(h)
        for index, out in enumerate(self.outputs or []):
            if out.id is None:
                out.id = f"_{index}_{out.io_type}_"

    def v1_inputs(self) -> dict:
        """The classic ``INPUT_TYPES()`` dict."""
        result: dict = {"required": {}}
        for inp in self.inputs or []:
            options = inp.as_dict()
            options.pop("optional", None)
            result.setdefault("optional" if inp.optional else "required", {})[inp.id] = (inp.get_io_type(), options)
        for h in self.hidden or []:
            result.setdefault("hidden", {})[h.name] = (h.value,)
        return result


# ---- nodes ----------------------------------------------------------------------------------

class ComfyNode:
    """Base class of V3 nodes: everything is a classmethod; no instance state."""

    SCHEMA: Schema = None
    hidden: HiddenHolder = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} must define define_schema()")

    @classmethod
    def execute(cls, **kwargs) -> "NodeOutput":
        raise NotImplementedError(f"{cls.__name__} must define execute()")

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        return True

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        return None

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        schema.validate()
        cls.SCHEMA = schema
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return cls.GET_SCHEMA().v1_inputs()

    @classmethod
    def RETURN_TYPES(cls) -> list:
        return [o.get_io_type() for o in cls.GET_SCHEMA().outputs or []]

    @classmethod
    def RETURN_NAMES(cls) -> list:
        return [o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs or []]

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden_inputs: dict) -> type["ComfyNode"]:
        clone = type(cls.__name__, (cls,), {"hidden": HiddenHolder.from_dict(hidden_inputs)})
        return clone


class NodeOutput:
    """What ``execute`` returns: positional results plus optional ``ui`` for the frontend."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict) -> "NodeOutput":
        return cls(*data.get("result", ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]
