"""The task table: a registry entry's ``task_type`` selects the task that owns its outputs.

The pattern of Optimum's TasksManager: (architecture, task) resolves to a config, here the entry
itself plus the :class:`~facezoo.tasks.base.Task` below, which declares the outputs and says how
artifacts are validated, probed, wrapped for users, served and exported. Nothing outside this
table branches on the task; a new task is one module here and one line in ``TASKS``
(docs/adding-a-model.md, "Adding a task").

This package sits under the registry: it imports only facezoo's base modules, so the registry
can check ``task_type`` against ``TASKS`` when it reads an entry.
"""

from __future__ import annotations

from facezoo.errors import RegistryError
from facezoo.tasks.base import Column, Comparison, DecisionRule, Outputs, Samples, Task, TensorDecl
from facezoo.tasks.detection import TASK as DETECTION
from facezoo.tasks.recognition import TASK as RECOGNITION

TASKS: dict[str, Task] = {task.name: task for task in (RECOGNITION, DETECTION)}
#: The task of a converted file that carries no model card (a bare .onnx or .xml): what facezoo
#: converted before it knew tasks.
DEFAULT_TASK = RECOGNITION.name


def task_named(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise RegistryError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def task_for(spec) -> Task:
    """The task of a registry entry (its ``task_type``)."""
    try:
        return TASKS[spec.task_type]
    except KeyError:
        raise RegistryError(f"model {spec.name!r}: task_type: unknown task {spec.task_type!r}; "
                            f"known tasks: {', '.join(TASKS)}") from None


__all__ = ["Column", "Comparison", "DEFAULT_TASK", "DecisionRule", "Outputs", "Samples", "TASKS", "Task",
           "TensorDecl", "task_for", "task_named"]
