"""A PNG of a run's curves from `TrainerState.log_history`: train and validation loss, and one metric."""

from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot global state, no display backend needed


def curve(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of every log entry that has `key`."""
    points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
    return [s for s, _ in points], [v for _, v in points]


def plot_training_curves(log_history: list[dict], path: str | Path, metric: str | None = "bleu") -> Path:
    """Write loss curves (left) and the validation `metric` (right, if logged) to `path`; return it."""
    path = Path(path)
    metric_steps, metric_values = curve(log_history, f"eval_{metric}") if metric else ([], [])
    figure = Figure(figsize=(11, 4) if metric_values else (6, 4), layout="constrained")
    losses = figure.add_subplot(1, 2 if metric_values else 1, 1)
    for key, label in (("loss", "train loss"), ("eval_loss", "validation loss")):
        steps, values = curve(log_history, key)
        if steps:
            losses.plot(steps, values, marker="." if key == "eval_loss" else None, label=label)
    losses.set_xlabel("step")
    losses.set_ylabel("loss")
    losses.grid(alpha=0.3)
    losses.legend()
    if metric_values:
        metric_axes = figure.add_subplot(1, 2, 2)
        metric_axes.plot(metric_steps, metric_values, marker="o", color="tab:green")
        metric_axes.set_xlabel("step")
        metric_axes.set_ylabel(f"validation {metric}")
        metric_axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
