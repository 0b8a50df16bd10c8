"""The page's pace (app/pace.py): a batch waits until the page has drawn the last one, and rested."""

from __future__ import annotations


def test_the_page_pace_holds_a_batch_until_the_last_one_is_drawn_and_rested(monkeypatch):
    from app import pace as pace_module
    from app.pace import PagePace

    now = [100.0]
    monkeypatch.setattr(pace_module.time, "monotonic", lambda: now[0])
    pace = PagePace(patience_s=5.0, rest=1.0)
    assert pace.ready()                       # a page whose script does not run is never waited on
    pace.mark_sent()
    assert pace.ready() and pace.sent == 1
    pace.answering = True                     # the script runs: from now on it is paced
    assert not pace.ready()                   # batch 1 waits for the page, before any answer
    now[0] += 0.3
    pace.param.update(took_ms=250.0, drawn=1)   # the page answers
    now[0] += 0.25
    pace.mark_sent()
    assert not pace.ready()                   # batch 2 out, not drawn yet
    now[0] += 0.9
    assert not pace.ready()
    pace.param.update(took_ms=600.0, drawn=2)   # the page painted it in 0.6 s of its own
    assert not pace.ready()                   # and rests as long as it worked
    now[0] += 0.59
    assert not pace.ready()
    now[0] += 0.02
    assert pace.ready()
    pace.mark_sent()
    now[0] += 4.99
    assert not pace.ready()
    now[0] += 0.02                            # no answer (a hidden tab paints no frames):
    assert pace.ready()                       # one batch per patience_s all the same
