"""The course's plotting helpers: 100 dpi, grids instead of strips, smoothed curves."""

from __future__ import annotations

import math

import matplotlib
import pytest

matplotlib.use("Agg")

from grit_lite import report  # noqa: E402
from grit_lite import rewards as rw  # noqa: E402
from grit_lite.examples import REAL_STYLE  # noqa: E402


def test_rolling_mean_smooths_and_skips_missing_values():
    assert report.rolling_mean([0.0, 2.0, 4.0, 6.0], window=2) == [0.0, 1.0, 3.0, 5.0]
    assert report.rolling_mean([1.0, float("nan"), 3.0], window=3) == [1.0, 1.0, 2.0]
    assert math.isnan(report.rolling_mean([float("nan")])[0])


def _metrics(steps: int) -> list[dict]:
    names = [fn.__name__ for fn in rw.GRIT_REWARDS]
    return [
        {"step": s, "reward": 1.0 + s / steps, **{f"rewards/{n}/mean": 0.1 for n in names}}
        for s in range(1, steps + 1)
    ]


def test_plot_rewards_is_a_grid_with_raw_and_smoothed_curves(tmp_path):
    out = tmp_path / "rewards.png"
    fig = report.plot_rewards(_metrics(30))
    assert fig.dpi == report.FIG_DPI
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    assert (rows, cols) == (2, 4) and fig.get_size_inches()[0] <= 7
    used = [ax for ax in fig.axes if ax.lines]
    assert len(used) == 7 and all(len(ax.lines) == 2 for ax in used)
    raw, smooth = used[-1].lines
    assert raw.get_alpha() < 1 and smooth.get_alpha() in (None, 1)
    report.plot_rewards(_metrics(30), out)
    from PIL import Image

    assert round(Image.open(out).info["dpi"][0]) == report.FIG_DPI


def test_plot_reward_stack_has_one_bar_per_completion_and_segment_per_reward():
    texts = [e.completion for e in REAL_STYLE]
    rows = rw.reward_table(
        texts, answer=[e.answer for e in REAL_STYLE], dataset=[e.dataset for e in REAL_STYLE]
    )
    fig = report.plot_reward_stack(rows, [e.name for e in REAL_STYLE])
    ax = fig.axes[0]
    assert len(ax.patches) == len(rows) * len(rw.GRIT_REWARDS)
    tops = [0.0] * len(rows)
    for patch in ax.patches:
        i = round(patch.get_x() + patch.get_width() / 2)
        tops[i] = max(tops[i], patch.get_y() + patch.get_height())
    assert tops == pytest.approx([row["total"] for row in rows])
    assert fig.dpi == report.FIG_DPI


def _smallest_text(fig) -> float:
    """The smallest font size, in points, of any visible text the figure draws."""
    from matplotlib.text import Text

    fig.canvas.draw()  # tick labels exist only once drawn
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    return min(sizes)


def test_every_course_figure_writes_at_least_9_pt_within_7_inches():
    from grit_lite import data, evaluate

    items = data.eval_split(200)[:4]
    texts = ["<think>[10, 10, 50, 50]</think><rethink>so</rethink><answer>2", "", "<answer>yes", ""]
    rows = [evaluate.score_completion(t, r) for t, (r, _) in zip(texts, items, strict=True)]
    table = rw.reward_table([e.completion for e in REAL_STYLE], answer="7", dataset="tallyqa")
    rollouts = [
        {"question": r.question, "answer": r.answer, "completion": t, "boxes": row["boxes"],
         "rewards": {"total": row["reward"]}}
        for t, (r, _), row in zip(texts, items, rows, strict=True)
    ]  # fmt: skip
    figures = {
        "rewards": report.plot_rewards(_metrics(30)),
        "reward stack": report.plot_reward_stack(table, [e.name for e in REAL_STYLE]),
        "rollouts": report.draw_rollouts(rollouts, items),
        "gallery": evaluate.gallery({"before": rows, "after": rows}, items, [0, 1, 2]),
    }
    for name, fig in figures.items():
        assert _smallest_text(fig) >= 9, name
        assert fig.get_size_inches()[0] <= 7, name
