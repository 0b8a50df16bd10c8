"""The sweep form's integer boxes (app/int_box.py): a bad entry is named, not reverted."""

from __future__ import annotations


def test_an_integer_box_names_a_bad_entry_instead_of_reverting_it():
    from app.int_box import IntBox

    box = IntBox("samples", "Samples", 6, start=1, end=48)
    box.box.value = "abc"
    assert box.value == 6 and box.error == "samples='abc' is not allowed; it must be an integer, in digits"
    assert box.message.visible and box.message.object == box.error and box.box.value == "abc"
    box.box.value = "100"
    assert box.value == 6 and "samples=100 is not allowed; it must be an integer >= 1 and <= 48" in box.error
    box.box.value = "12"
    assert box.value == 12 and box.error == "" and not box.message.visible
    box.box.value = "2.5"
    box.value = 3                                          # set from code: shown, message gone
    assert box.box.value == "3" and box.error == "" and not box.message.visible
