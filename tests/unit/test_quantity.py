from __future__ import annotations

from decimal import Decimal

import pytest

from artifact_operator.logic.quantity import parse_quantity


@pytest.mark.parametrize(("a", "b"), [
    ("500m", "0.5"), ("1Gi", "1024Mi"), (1, "1"), ("2e3", "2k"), ("1.5Gi", 1610612736),
    ("100Mi", "104857600"), ("1", "1000m"), ("0", "0m"), (".5", "500m"), ("1E3", "1k"),
])
def test_equal_quantities(a: str | int, b: str | int) -> None:
    assert parse_quantity(a) == parse_quantity(b)


@pytest.mark.parametrize("value", ["nginx:1.27", "1GB", "", "abc", "1.2.3", "Gi", "1 Gi"])
def test_not_quantities(value: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(value)


def test_booleans_are_not_quantities() -> None:
    with pytest.raises(ValueError):
        parse_quantity(True)


def test_exact_values() -> None:
    assert parse_quantity("150Gi") == Decimal(150 * 2**30)
    assert parse_quantity("250m") == Decimal("0.25")
