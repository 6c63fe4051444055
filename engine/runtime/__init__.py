"""The runtime: the ``Engine`` facade and how one step of a process instance runs.

``facade`` is the one API the CLI, the web UI, the REST API and the benchmarks use;
``state`` and ``compaction`` keep a workflow small and durable; ``statements`` are the
step's SQL, built once; ``assignment`` resolves who owns a human step and by when.
"""

from engine.runtime.facade import CompletedItem, DeployResult, Engine, InstanceDetails

__all__ = ["CompletedItem", "DeployResult", "Engine", "InstanceDetails"]
