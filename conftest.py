"""Test order: pytest-randomly shuffles the tests, and this keeps each notebook whole.

nbval runs a notebook's cells in one kernel, one after the other, so its cells must stay
together and in cell order, while the notebooks move among the other tests with the seed.
pytest-randomly prints its seed in the header ("Using --randomly-seed=N"); replay an order
with ``make test PYTEST_ARGS="--randomly-seed=N"``.
"""

from __future__ import annotations

import pytest


def keep_notebooks_whole(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with each notebook's cells put back in cell order, as one block standing
    where the shuffle put the notebook's first-seen cell; every other test keeps its place."""
    from nbval.plugin import IPyNbCell

    cells: dict[pytest.Collector, list[IPyNbCell]] = {}
    for item in items:
        if isinstance(item, IPyNbCell):
            cells.setdefault(item.parent, []).append(item)
    ordered: list[pytest.Item] = []
    for item in items:
        if not isinstance(item, IPyNbCell):
            ordered.append(item)
        elif item.parent in cells:
            ordered += sorted(cells.pop(item.parent), key=lambda cell: cell.cell_num)
    return ordered


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = keep_notebooks_whole(items)
