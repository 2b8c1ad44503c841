"""The progress bar redraws by the clock (at most every refresh_s seconds, and always at a stage's end);
without a terminal there is no bar, a heartbeat line instead; log records never start mid-bar."""

from __future__ import annotations

import io
import logging
import sys

import lightning.pytorch as L
from torch.utils.data import DataLoader

from modules import blobs, make_module
from trainlab.callbacks import progress
from trainlab.callbacks.progress import ThrottledProgressBar
from trainlab.core.logs import BarSafeStreamHandler


def test_redraws_at_most_every_refresh_s_and_at_the_last_batch(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = ThrottledProgressBar(refresh_s=0.5, interactive=True)
    drawn = []
    for batch in range(1, 31):  # 30 batches, 0.125 s apart (exact in binary)
        now[0] += 0.125
        if bar._should_update(batch, 30):
            drawn.append(batch)
    assert drawn == [1, 5, 9, 13, 17, 21, 25, 29, 30]
    bar.disable()
    assert not bar._should_update(30, 30)


def test_without_a_terminal_there_is_no_bar_and_a_heartbeat_within_epochs(caplog, capsys):
    caplog.set_level(logging.INFO, logger="trainlab.callbacks.progress")
    bar = ThrottledProgressBar(heartbeat_s=0.0, interactive=False)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, callbacks=[bar]
    )
    trainer.fit(make_module(), DataLoader(blobs(64), batch_size=16))
    beats = [r.getMessage() for r in caplog.records if r.name == "trainlab.callbacks.progress"]
    assert [b.split(" (")[0] for b in beats] == [f"epoch 1: batch {i} of 4" for i in range(1, 5)]
    assert "\r" not in capsys.readouterr().err


def test_a_log_record_clears_the_bar_and_starts_its_own_line(monkeypatch):
    from tqdm import tqdm

    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    handler = BarSafeStreamHandler(screen)
    bar = tqdm(total=10, file=screen, mininterval=0)
    bar.update(3)
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "a record", None, None))
    bar.close()
    before, _, after = screen.getvalue().partition("a record")
    assert before.endswith("\r") and after.startswith("\n")  # the bar line cleared, the record ended
