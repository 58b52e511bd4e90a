"""The ComfyUI workflow harness: load the pack as ComfyUI does, convert and run workflows.

Used by the tests and by the demo command. See ``env`` (real or stand-in ComfyUI modules),
``pack_loader`` (path-derived import), ``ui_format`` (UI -> API) and ``executor``
(validation, execution, caching).
"""
from .env import install, using_stand_ins
from .executor import Executor, NodeExecutionError, PromptValidationError, RunResult
from .pack_loader import LoadedPack, load_pack
from .runner import all_nodes, api_twin, example_workflows, new_executor, read_workflow
from .ui_format import WorkflowFormatError, ui_to_api

__all__ = ["install", "using_stand_ins", "Executor", "NodeExecutionError", "PromptValidationError",
           "RunResult", "LoadedPack", "load_pack", "WorkflowFormatError", "ui_to_api", "all_nodes", "api_twin",
           "example_workflows", "new_executor", "read_workflow"]
