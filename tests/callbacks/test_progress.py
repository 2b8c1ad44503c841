"""The progress bar redraws by the clock: at most every refresh_s seconds, and always at a stage's end."""

from __future__ import annotations

from trainlab.callbacks import progress
from trainlab.callbacks.progress import ThrottledProgressBar


def test_redraws_at_most_every_refresh_s_and_at_the_last_batch(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = ThrottledProgressBar(refresh_s=0.5)
    drawn = []
    for batch in range(1, 31):  # 30 batches, 0.125 s apart (exact in binary)
        now[0] += 0.125
        if bar._should_update(batch, 30):
            drawn.append(batch)
    assert drawn == [1, 5, 9, 13, 17, 21, 25, 29, 30]
    bar.disable()
    assert not bar._should_update(30, 30)
