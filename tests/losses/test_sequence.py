"""loss=ctc: label/output mapping around the blank, the loss against torch's CTCLoss, greedy decoding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from configs import compose_train
from trainlab.core.build import build
from trainlab.core.metrics import SequenceMetrics, exact_matches
from trainlab.errors import ConfigError
from trainlab.losses import CTCSequenceLoss

PAD = -1


def scores_for(path: list[int], classes: int = 11) -> torch.Tensor:
    """(1, T, classes) scores whose best output at step t is path[t]."""
    scores = torch.full((1, len(path), classes), -5.0)
    scores[0, torch.arange(len(path)), torch.tensor(path)] = 5.0
    return scores


def test_the_shipped_config_builds_a_ctc_loss_whose_blank_is_the_last_output(tmp_path):
    cfg = compose_train(tmp_path, "data=digit_strings", "model=crnn", "loss=ctc")
    loss = build("loss", cfg.loss, num_classes=10, class_counts=None)
    assert isinstance(loss, CTCSequenceLoss) and loss.task == "sequence" and loss.blank == 10
    assert loss.criterion.zero_infinity and loss.criterion.reduction == "mean"


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    loss = CTCSequenceLoss(nn.CTCLoss(blank=10), num_classes=10)
    # 3 3 _ 3 7 7 _ _ 1  ->  3 3 7 1  (a blank separates the two 3s)
    decoded = loss.predict(scores_for([3, 3, 10, 3, 7, 7, 10, 10, 1]))
    assert decoded.tolist() == [[3, 3, 7, 1, PAD, PAD, PAD, PAD, PAD]]
    assert loss.predict(scores_for([10, 10, 10])).tolist() == [[PAD, PAD, PAD]]


def test_with_blank_zero_classes_shift_up_by_one_output():
    loss = CTCSequenceLoss(nn.CTCLoss(blank=0), num_classes=10)
    assert loss.to_outputs(torch.tensor([0, 5, 9])).tolist() == [1, 6, 10]
    # outputs 1 and 10 are classes 0 and 9
    assert loss.predict(scores_for([1, 0, 10]))[0, :2].tolist() == [0, 9]


def test_loss_equals_torch_ctc_with_per_sample_target_lengths():
    torch.manual_seed(0)
    scores = torch.randn(3, 12, 11)
    labels = torch.tensor([[1, 2, 3, PAD], [4, PAD, PAD, PAD], [5, 5, 6, 7]])
    loss = CTCSequenceLoss(nn.CTCLoss(blank=10, reduction="none"), num_classes=10)
    expected = nn.CTCLoss(blank=10, reduction="none")(
        scores.log_softmax(-1).transpose(0, 1),
        torch.tensor([1, 2, 3, 4, 5, 5, 6, 7]),
        torch.full((3,), 12),
        torch.tensor([3, 1, 4]),
    )
    assert torch.allclose(loss(scores, labels), expected)


def test_a_perfect_path_scores_near_zero_loss_and_decodes_to_the_label():
    loss = CTCSequenceLoss(nn.CTCLoss(blank=10), num_classes=10)
    scores = scores_for([4, 10, 4, 2, 2]) * 4
    label = torch.tensor([[4, 4, 2, PAD]])
    assert loss(scores, label) < 0.05
    assert exact_matches(loss.predict(scores), label).tolist() == [True]


def test_out_of_range_blank_is_a_config_error():
    with pytest.raises(ConfigError, match=r"loss.criterion.blank=11: .* must be in 0..10"):
        CTCSequenceLoss(nn.CTCLoss(blank=11), num_classes=10)


def test_class_probabilities_do_not_apply_to_sequences():
    loss = CTCSequenceLoss(nn.CTCLoss(blank=10), num_classes=10)
    with pytest.raises(ConfigError, match="predicts label sequences"):
        loss.probabilities(torch.randn(1, 5, 11))
    texts, path_probability = loss.describe(scores_for([1, 10, 2]), [str(d) for d in range(10)])
    assert texts == ["12"] and 0.9 < path_probability[0] <= 1.0


def test_sequence_metrics_are_exact_match_accuracy_and_character_error_rate():
    metrics = SequenceMetrics()
    preds = torch.tensor([[1, 2, 3, PAD, PAD], [4, 4, PAD, PAD, PAD], [7, PAD, PAD, PAD, PAD]])
    labels = torch.tensor([[1, 2, 3, PAD], [4, PAD, PAD, PAD], [7, 8, 9, 9]])
    decoded = SimpleNamespace(predict=lambda outputs: outputs)  # the outputs here are decoded already
    metrics.update(torch.tensor(0.5), decoded, preds, labels)
    values = metrics.compute_and_reset()
    assert values["acc"].item() == pytest.approx(1 / 3)
    assert values["cer"].item() == pytest.approx((0 + 1 + 3) / (3 + 1 + 4))
    assert values["loss"].item() == pytest.approx(0.5)
    # insertions, deletions and substitutions each count one edit; the state is reset after compute
    metrics.update(
        torch.tensor(0.1), decoded, torch.tensor([[2, 1, PAD], [5, 5, 5]]), torch.tensor([[1, 2], [5, PAD]])
    )
    assert metrics.compute_and_reset()["cer"].item() == pytest.approx((2 + 2) / (2 + 1))
