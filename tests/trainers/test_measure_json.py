"""``trainers.measure.to_json``: the hand-written JSON writer must be read back by json.loads
as the same values, for any text a command line or a hostname may hold."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainers.measure import RawJson, to_json

_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # surrogates and astral characters included
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_values)
def test_json_loads_reads_back_what_to_json_wrote(value: object) -> None:
    text = to_json(value)
    assert text.isascii()  # a lone surrogate from undecodable argv bytes cannot break the file
    assert json.loads(text) == value


def test_raw_json_goes_in_as_it_is_and_non_numbers_become_null() -> None:
    text = to_json({"params": RawJson('{"lr": 0.1}'), "x": float("nan"), "ok": [True, None]})
    assert json.loads(text) == {"params": {"lr": 0.1}, "x": None, "ok": [True, None]}
    with pytest.raises(TypeError, match="set"):
        to_json({1, 2})
