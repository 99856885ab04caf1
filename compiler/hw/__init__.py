"""Hardware engines: one module per engine kind, each holding its plan fields, cost (ROM bits,
cycles in closed form from its kernel's schedule), timing model, and Verilog parameter and ROM
writers; one registry (registry.py) that the plan pass, the backends, the report and the timing
model all go through. docs/architecture.md has the checklist for adding an engine.
"""

import importlib
import pkgutil

from compiler import ir
from compiler.hw.base import (
    Engine,
    EngineCost,
    EngineSpec,
    PlanError,
    Planned,
    RomField,
    RomImage,
    StoredLayer,
    VerilogBackendError,
)
from compiler.hw.registry import (
    ENGINES,
    check_plan,
    engine,
    engine_ops,
    engines_for,
    plan_problems,
    planned_engine,
    register,
    require_plan,
)

# Every other module of this package is an engine module, and importing it registers it: a new
# engine is one new file here, listed nowhere else.
_INFRASTRUCTURE = {
    "argmax",
    "base",
    "dag_timing",
    "design",
    "line_timing",
    "registry",
    "timing",
}  # argmax: the fixed last stage, not a layer engine
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

ir.register_check(check_plan)

__all__ = [
    "Engine",
    "EngineCost",
    "EngineSpec",
    "Planned",
    "PlanError",
    "RomField",
    "RomImage",
    "StoredLayer",
    "VerilogBackendError",
    "ENGINES",
    "check_plan",
    "engine",
    "engine_ops",
    "engines_for",
    "plan_problems",
    "planned_engine",
    "register",
    "require_plan",
]
