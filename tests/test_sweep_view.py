"""The sweeps page (app/sweep_view.py) without a browser: its form refuses a bad integer."""

from __future__ import annotations


def test_the_sweep_form_refuses_to_start_with_a_bad_integer(tmp_path):
    from app.sweep_view import SweepView

    view = SweepView(tmp_path)
    try:
        view.form_steps.box.value = "ten"
        view._on_start()
        assert view.handle is None
        assert view.form_message.object == "Not started: steps='ten' is not allowed; it must be an integer, in digits"
        assert view.form_steps.message.visible
    finally:
        view.close()
