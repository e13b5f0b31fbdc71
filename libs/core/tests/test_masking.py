import pytest
from hypothesis import given
from hypothesis import strategies as st
from qianmian_core import masking
from qianmian_core.masking import (
    contains_identifier,
    mask_card_number,
    mask_id_number,
    mask_mobile,
    mask_name,
    mask_text,
    mask_value,
)


def test_mobile_is_masked_in_free_text() -> None:
    assert mask_mobile("call 13812345678 now") == "call 138****5678 now"
    assert mask_mobile("+86 13812345678") == "+86 138****5678"


def test_id_number_keeps_area_and_last_four() -> None:
    assert mask_id_number("id=11010119900307123X;") == "id=110101********123X;"


def test_card_number_grouped_or_not() -> None:
    assert mask_card_number("6222021234567890123") == "6222 **** **** 0123"
    assert mask_card_number("6222 0212 3456 7890") == "6222 **** **** 7890"


def test_short_numbers_and_amounts_are_left_alone() -> None:
    text = "amount 1234567.89 on 2026-11-23, order 12345"
    assert mask_text(text) == text


def test_mask_value_walks_nested_structures() -> None:
    masked = mask_value({"a": ["13912345678", {"b": "110101199003071234"}], "n": 3})
    assert masked == {"a": ["139****5678", {"b": "110101********1234"}], "n": 3}


def test_contains_identifier_says_whether_mask_value_changes_anything() -> None:
    clean = {"a": ["model 20261124T080050809024Z", {"b": 12345678901, "c": (1.5, None)}], "n": "C000000042"}
    assert not contains_identifier(clean)
    assert mask_value(clean) == clean
    for dirty in (
        {"a": ["x", {"b": "call 13912345678"}]},
        [("6222 0212 3456 7890",)],
        "110101199003071234",
    ):
        assert contains_identifier(dirty)
        assert mask_value(dirty) != dirty


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet="0123456789 -+x"),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_contains_identifier_agrees_with_mask_value(value: object) -> None:
    assert contains_identifier(value) == (mask_value(value) != value)


def test_contains_identifier_remembers_clean_texts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clean texts are remembered (a bounded set, emptied when full); a text with an identifier is
    found every time, however often the clean ones around it were seen."""
    monkeypatch.setattr(masking, "_CLEAN", {})
    monkeypatch.setattr(masking, "_CLEAN_MAX", 3)
    record = {"id": "C000000042", "codes": ["cf_similar_customers", "model 20261124T080050809024Z"]}
    for _ in range(3):
        assert not contains_identifier(record)
        assert contains_identifier({**record, "note": "call 13912345678"})
        assert contains_identifier(["6222 0212 3456 7890", *record["codes"]])
    assert len(masking._CLEAN) <= 3
    assert "call 13912345678" not in masking._CLEAN


def test_mask_name() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_name("") == ""


@given(st.from_regex(r"1[3-9]\d{9}", fullmatch=True))
def test_no_mobile_survives(mobile: str) -> None:
    assert mobile not in mask_text(f"x {mobile} y")


@given(
    st.from_regex(
        r"[1-6]\d{5}(19[5-9]\d|20[01]\d)(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])\d{3}[\dX]", fullmatch=True
    )
)
def test_no_id_number_survives(id_number: str) -> None:
    assert id_number not in mask_text(f"id:{id_number}")


@given(st.from_regex(r"[3-6]\d{15,18}", fullmatch=True))
def test_no_card_number_survives(card: str) -> None:
    assert card not in mask_text(f"card {card}.")


def test_log_lines_are_json_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    from qianmian_core.logging import configure_logging, get_logger

    configure_logging("test-svc")
    get_logger("t").info("consent_changed", customer_id="C000000001", note="call 13812345678")
    logging.getLogger("stdlib").warning("card 6222021234567890123 declined")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["note"] == "call 138****5678"
    assert lines[0]["customer_id"] == "C000000001"
    assert lines[0]["service"] == "test-svc"
    assert lines[1]["event"] == "card 6222 **** **** 0123 declined"


def test_dicts_that_keep_accepts_are_neither_read_nor_masked() -> None:
    from qianmian_core.masking import contains_identifier, mask_value

    def reference(d: dict[object, object]) -> bool:
        return set(d) == {"$ref"}

    value = {"ref": {"$ref": "a13812345678b"}, "notes": ["call 13912345678"]}
    assert contains_identifier({"ref": {"$ref": "a13812345678b"}})
    assert not contains_identifier({"ref": {"$ref": "a13812345678b"}}, keep=reference)
    assert contains_identifier(value, keep=reference)
    assert mask_value(value, keep=reference) == {
        "ref": {"$ref": "a13812345678b"},
        "notes": ["call 139****5678"],
    }
    assert mask_value(value)["ref"] == {"$ref": "a138****5678b"}
