"""The one wagon rule shared by online forecasts and batch scoring."""

import numpy as np
import pytest

from freightml.models.wagons import wagons_for
from freightml.serving import schema

pytestmark = [pytest.mark.unit]


def test_rounds_to_whole_wagons_with_one_for_any_load() -> None:
    # capacity 70 t: 0 t -> none; 0.1 t and 34 t (rounds to 0) -> one; 105 t = 1.5 -> 2 (half to
    # even); 104 t -> 1; 175 t = 2.5 -> 2 (half to even); 700 t -> 10
    tonnes = np.array([0.0, 0.1, 34.0, 105.0, 104.0, 175.0, 700.0])
    assert wagons_for(tonnes, 70.0).tolist() == [0, 1, 1, 2, 1, 2, 10]


def test_capacity_per_row() -> None:
    assert wagons_for([130.0, 130.0], [65.0, 130.0]).tolist() == [2, 1]


def test_serving_uses_the_same_rule() -> None:
    assert schema.wagons_for is wagons_for


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_impossible_tonnes_are_named(bad: float) -> None:
    with pytest.raises(
        ValueError, match=r"1 tonnes value\(s\) are negative or not finite .*position 1"
    ):
        wagons_for([5.0, bad], 65.0)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be a positive"):
        wagons_for([5.0], [0.0])
