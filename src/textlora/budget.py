"""train.budget_minutes: how many optimizer steps and evaluations fit a training-time budget.

The step time is measured on this machine with this model and data (train.probe_step_seconds),
the evaluation time on a sample of the validation rows; the plan is written to the work folder
so that a resumed run keeps it instead of measuring again (and so trains the same steps).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from textlora.errors import TextloraError

PLAN_FILE = "budget.json"
EVALUATIONS = 6
"""Evaluations on the validation rows spread over a budgeted run (each can become the checkpoint that ships)."""
SAFETY = 0.92
"""Share of the budget planned for: room for the slower first steps, checkpoints and the last evaluation."""


@dataclass(frozen=True)
class BudgetPlan:
    budget_minutes: float
    step_seconds: float
    evaluation_seconds: float
    max_steps: int
    eval_steps: int

    def describe(self) -> str:
        return (f"budget {self.budget_minutes:g} min: a step takes {self.step_seconds:.2f} s and an evaluation "
                f"{self.evaluation_seconds:.1f} s on this machine -> {self.max_steps} optimizer steps, "
                f"evaluated every {self.eval_steps}")


def plan_budget(budget_minutes: float, step_seconds: float, evaluation_seconds: float,
                evaluations: int = EVALUATIONS) -> BudgetPlan:
    """The most optimizer steps such that steps and `evaluations` evaluations fit SAFETY x budget."""
    available = SAFETY * budget_minutes * 60 - evaluations * evaluation_seconds
    steps = math.floor(available / step_seconds) if step_seconds > 0 else 0
    if steps < 1:
        needed = (evaluations * evaluation_seconds + step_seconds) / SAFETY / 60
        raise TextloraError(
            f"train.budget_minutes {budget_minutes:g} is too small: one step takes {step_seconds:.1f} s and "
            f"{evaluations} evaluations {evaluations * evaluation_seconds:.0f} s here; give at least "
            f"{math.ceil(needed * 10) / 10:g} minutes (or fewer validation rows)")
    return BudgetPlan(budget_minutes=budget_minutes, step_seconds=step_seconds,
                      evaluation_seconds=evaluation_seconds, max_steps=steps,
                      eval_steps=max(1, math.ceil(steps / evaluations)))


def save_plan(plan: BudgetPlan, work_dir: Path) -> None:
    (Path(work_dir) / PLAN_FILE).write_text(json.dumps(asdict(plan)))


def load_plan(work_dir: Path) -> BudgetPlan | None:
    path = Path(work_dir) / PLAN_FILE
    return BudgetPlan(**json.loads(path.read_text())) if path.is_file() else None
