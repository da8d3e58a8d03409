"""Results of a LIBERO evaluation: the JSON store (resumable), the per-task table, the report and its plot.

``results.json`` holds the run's settings and one record per finished episode, keyed by (seed, suite, task, trial).
It is rewritten atomically after every episode, so an interrupted run loses at most the episode in progress, and a
new run with the same settings skips the episodes already there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rynnvla_ros.eval_results import load_results, save_results

TABLE_FILE = "results.md"
REPORT_FILE = "report.md"
PLOT_FILE = "success_rate.png"
FORMAT_VERSION = 1


@dataclass
class EpisodeRecord:
    """One finished trial."""

    seed: int
    suite: str
    task_id: int
    trial: int
    task: str
    init_state: int
    success: bool
    state: str
    """success, timeout or error."""
    steps: int
    """Policy steps executed."""
    max_steps: int
    wait_steps: int
    chunks: int
    message: str = ""
    wall_time_s: float = 0.0
    video: str = ""
    final_state: list[float] = field(default_factory=list)
    """The 8-d state at the end (equal in two runs of the same trial: the lock-step run is deterministic)."""

    @property
    def key(self) -> tuple[int, str, int, int]:
        return (self.seed, self.suite, self.task_id, self.trial)


@dataclass
class Results:
    """Settings of a run and its episode records."""

    settings: dict[str, Any]
    episodes: list[EpisodeRecord] = field(default_factory=list)

    # ---------------------------------------------------------------- queries
    def done(self) -> set[tuple[int, str, int, int]]:
        """Keys of the finished episodes."""
        return {e.key for e in self.episodes}

    def add(self, record: EpisodeRecord) -> None:
        """Add (or replace) the record of one episode."""
        self.episodes = [e for e in self.episodes if e.key != record.key]
        self.episodes.append(record)
        self.episodes.sort(key=lambda e: e.key)

    def per_task(self) -> list[dict[str, Any]]:
        """One row per (suite, task): successes, trials, rate, mean steps of the successes, per-seed rates."""
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        success_steps: dict[tuple[str, int], list[int]] = {}
        for e in self.episodes:
            key = (e.suite, e.task_id)
            row = rows.setdefault(
                key, {"suite": e.suite, "task_id": e.task_id, "task": e.task, "successes": 0, "trials": 0, "seeds": {}}
            )
            row["successes"] += int(e.success)
            row["trials"] += 1
            per_seed = row["seeds"].setdefault(e.seed, [0, 0])
            per_seed[0] += int(e.success)
            per_seed[1] += 1
            if e.success:
                success_steps.setdefault(key, []).append(e.steps)
        out = []
        for key in sorted(rows):
            row = rows[key]
            steps = success_steps.get(key, [])
            row["rate"] = row["successes"] / row["trials"]
            row["mean_success_steps"] = sum(steps) / len(steps) if steps else None
            out.append(row)
        return out

    def per_suite(self) -> dict[str, dict[str, Any]]:
        """Successes, trials and rate per suite."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.episodes:
            s = out.setdefault(e.suite, {"successes": 0, "trials": 0})
            s["successes"] += int(e.success)
            s["trials"] += 1
        for s in out.values():
            s["rate"] = s["successes"] / s["trials"]
        return out

    # ---------------------------------------------------------------- files
    def save(self, directory: Path) -> Path:
        """Write ``results.json`` atomically (a temporary file renamed over the old one)."""
        summary = {"suites": self.per_suite(), "tasks": self.per_task()}
        return save_results(directory, FORMAT_VERSION, self.settings, summary, self.episodes)

    @classmethod
    def load(cls, directory: Path) -> Results | None:
        """The results in ``directory``, or None when there are none."""
        stored = load_results(directory, FORMAT_VERSION, "rynnvla-eval-libero", EpisodeRecord)
        return None if stored is None else cls(*stored)


def _pct(successes: int, trials: int) -> str:
    return f"{100.0 * successes / trials:.1f} %" if trials else "-"


def task_table(results: Results) -> str:
    """Markdown table: one row per task with its successes, trials and rate (and per seed when there are several)."""
    seeds = sorted({e.seed for e in results.episodes})
    head = ["suite", "task", "instruction", "successes / trials", "success rate"]
    if len(seeds) > 1:
        head += [f"seed {s}" for s in seeds]
    head.append("mean steps (successes)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results.per_task():
        cells = [row["suite"], str(row["task_id"]), row["task"], f"{row['successes']} / {row['trials']}"]
        cells.append(_pct(row["successes"], row["trials"]))
        if len(seeds) > 1:
            cells += [_pct(*row["seeds"].get(s, (0, 0))) for s in seeds]
        steps = row["mean_success_steps"]
        cells.append("-" if steps is None else f"{steps:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    for suite, s in results.per_suite().items():
        cells = [suite, "all", "", f"{s['successes']} / {s['trials']}", _pct(s["successes"], s["trials"])]
        cells += [""] * (len(head) - len(cells))
        lines.append("| " + " | ".join(f"**{c}**" if c else c for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot_success(results: Results, path: Path) -> Path:
    """Bar chart of the success rate per task (one bar per seed), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.per_task()
    seeds = sorted({e.seed for e in results.episodes})
    labels = [f"{r['suite']}\n{r['task_id']}" for r in rows]
    width = 0.8 / max(len(seeds), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rows) * max(len(seeds), 1) + 2), 4.0))
    for i, seed in enumerate(seeds):
        rates = []
        for r in rows:
            ok, n = r["seeds"].get(seed, (0, 0))
            rates.append(100.0 * ok / n if n else 0.0)
        xs = [x + (i - (len(seeds) - 1) / 2) * width for x in range(len(rows))]
        ax.bar(xs, rates, width=width, label=f"seed {seed}")
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success rate (%)")
    overall = results.per_suite()
    ax.set_title(", ".join(f"{k}: {_pct(v['successes'], v['trials'])}" for k, v in overall.items()) or "no episodes")
    if len(seeds) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(results: Results, directory: Path) -> dict[str, Path]:
    """Write the table, the plot and the report into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    table = task_table(results)
    table_path = directory / TABLE_FILE
    table_path.write_text(table, encoding="utf-8")
    plot_path = plot_success(results, directory / PLOT_FILE)
    s = results.settings
    lines = [
        "# LIBERO evaluation",
        "",
        f"Model: `{s.get('model', '')}` ({s.get('mode', '')} actions).",
        "",
        "Protocol: " + s.get("protocol", ""),
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in ("suites", "tasks", "trials", "seeds", "max_steps", "wait_steps", "replan_steps", "lockstep"):
        if key in s:
            lines.append(f"| {key} | {s[key]} |")
    episodes = results.episodes
    if episodes:
        wall = sum(e.wall_time_s for e in episodes)
        steps = sum(e.steps + e.wait_steps for e in episodes)
        lines.append(f"| episodes | {len(episodes)} ({wall:.0f} s, {steps / max(wall, 1e-9):.1f} simulator steps/s) |")
    errors = [e for e in episodes if e.state == "error"]
    lines += ["", "## Success rate per task", "", table, f"![success rate per task]({PLOT_FILE})", ""]
    videos = [e for e in episodes if e.video]
    if videos:
        lines += ["## Videos", ""]
        lines += [f"- `{e.video}`: {e.suite} task {e.task_id} trial {e.trial} seed {e.seed}: {e.state}" for e in videos]
        lines.append("")
    if errors:
        lines += ["## Episodes that ended in an error", ""]
        lines += [f"- {e.suite} task {e.task_id} trial {e.trial} seed {e.seed}: {e.message}" for e in errors]
        lines.append("")
    report_path = directory / REPORT_FILE
    report_path.write_text("\n".join(lines), encoding="utf-8")
    return {"table": table_path, "plot": plot_path, "report": report_path}
