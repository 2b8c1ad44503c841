"""The adapters' conversions, worked examples, class weights and old spellings."""

import functools

import pytest
import torch
import torch.nn.functional as F

from trainlab.errors import ConfigError
from trainlab.losses import (
    BatchTripletLoss,
    ClassifierLoss,
    PrototypeCosineLoss,
    PrototypeDistanceLoss,
    TrueClassRankingLoss,
)
from trainlab.losses.prototypes import mine_triplets
from trainlab.losses.targets import TARGET_FORMS

LOGITS = torch.tensor([[1.0, 2.0], [1.0, 3.0], [1.0, 3.0]])
LABELS = torch.tensor([0, 1, 1])


def ce(**kwargs) -> ClassifierLoss:
    return ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss, **kwargs), num_classes=2)


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [("none", [1.3133, 0.1269, 0.1269]), ("sum", 1.5671), ("mean", 0.5224)],
)
def test_cross_entropy_worked_example(reduction, expected):
    assert torch.allclose(ce(reduction=reduction)(LOGITS, LABELS), torch.tensor(expected), atol=1e-4)


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [("none", [1.3133, 0.2539, 0.2539]), ("sum", 1.8210), ("mean", 0.3642)],
)
def test_cross_entropy_worked_example_with_class_weights(reduction, expected):
    loss = ce(reduction=reduction, weight=[1.0, 2.0])
    assert torch.allclose(loss(LOGITS, LABELS), torch.tensor(expected), atol=1e-4)


def test_target_encodings():
    labels = torch.tensor([2, 0])
    assert TARGET_FORMS["index"](labels, 3, 0.0) is labels
    assert TARGET_FORMS["one_hot"](labels, 3, 0.0).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert torch.allclose(
        TARGET_FORMS["soft"](labels, 3, 0.3), torch.tensor([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    )
    assert TARGET_FORMS["plus_minus_one"](labels, 3, 0.0).tolist() == [[-1, -1, 1], [1, -1, -1]]
    encoded = TARGET_FORMS["multilabel_index"](labels, 3, 0.0)
    assert encoded.tolist() == [[2, -1, -1], [0, -1, -1]] and encoded.dtype == torch.int64


def test_nll_on_log_probs_equals_cross_entropy():
    nll = ClassifierLoss(functools.partial(torch.nn.NLLLoss), input="log_probs")
    assert torch.allclose(nll(LOGITS, LABELS), F.cross_entropy(LOGITS, LABELS))


def test_bce_on_sigmoid_equals_bce_with_logits():
    bce = ClassifierLoss(functools.partial(torch.nn.BCELoss), input="sigmoid", target="one_hot")
    bce_logits = ClassifierLoss(functools.partial(torch.nn.BCEWithLogitsLoss), target="one_hot")
    assert torch.allclose(bce(LOGITS, LABELS), bce_logits(LOGITS, LABELS))


def test_kl_div_to_smoothed_targets_is_soft_ce_minus_target_entropy():
    kl = ClassifierLoss(
        functools.partial(torch.nn.KLDivLoss, reduction="batchmean"),
        input="log_probs",
        target="soft",
        smoothing=0.1,
    )
    soft_ce = ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss), target="soft", smoothing=0.1)
    target = TARGET_FORMS["soft"](LABELS, 2, 0.1)
    entropy = -(target * target.log()).sum(1).mean()
    assert torch.allclose(kl(LOGITS, LABELS), soft_ce(LOGITS, LABELS) - entropy, atol=1e-6)


def test_soft_ce_without_smoothing_is_cross_entropy():
    soft_ce = ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss, reduction="sum"), target="soft")
    assert torch.allclose(soft_ce(LOGITS, LABELS), torch.tensor(1.5671), atol=1e-4)


def test_ranking_pairs_the_true_score_with_every_other():
    loss = TrueClassRankingLoss(functools.partial(torch.nn.MarginRankingLoss, margin=1.0, reduction="none"))
    logits = torch.tensor([[3.0, 1.0, 2.5]])
    assert torch.allclose(loss(logits, torch.tensor([0])), torch.tensor([[0.0, 0.5]]))


def test_auto_class_weights_balance_the_counts():
    loss = ClassifierLoss(
        functools.partial(torch.nn.CrossEntropyLoss, weight="auto"), num_classes=2, class_counts=[30, 10]
    )
    assert torch.allclose(loss.criterion.weight, torch.tensor([40 / 60, 40 / 20]))
    bce = ClassifierLoss(
        functools.partial(torch.nn.BCEWithLogitsLoss, pos_weight="auto"),
        target="one_hot",
        num_classes=2,
        class_counts=[30, 10],
    )
    assert torch.allclose(bce.criterion.pos_weight, torch.tensor([10 / 30, 30 / 10]))


def test_weight_length_must_match_the_classes():
    with pytest.raises(ConfigError, match=r"loss\.criterion\.weight has 3 values but the data has 2 classes"):
        ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss, weight=[1.0, 1.0, 1.0]), num_classes=2)


def test_auto_needs_counts_and_only_for_weights():
    with pytest.raises(ConfigError, match="class counts"):
        ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss, weight="auto"), num_classes=2)
    with pytest.raises(ConfigError, match="margin=auto is not supported"):
        ClassifierLoss(
            functools.partial(torch.nn.MultiMarginLoss, margin="auto"), num_classes=2, class_counts=[1, 1]
        )


def test_elementwise_mean_is_accepted_as_mean_with_a_warning():
    with pytest.warns(UserWarning, match="elementwise_mean"):
        loss = ce(reduction="elementwise_mean")
    assert torch.allclose(loss(LOGITS, LABELS), torch.tensor(0.5224), atol=1e-4)


def test_unknown_forms_list_the_choices():
    with pytest.raises(ConfigError, match=r"loss\.target='onehot'.*one_hot"):
        ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss), target="onehot")
    with pytest.raises(ConfigError, match=r"loss\.input='probability'.*log_probs"):
        ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss), input="probability")


@pytest.mark.parametrize("cls", [PrototypeDistanceLoss, PrototypeCosineLoss])
def test_an_embedding_at_a_prototype_is_predicted_as_its_class(cls):
    criterion = torch.nn.HingeEmbeddingLoss if cls is PrototypeDistanceLoss else torch.nn.CosineEmbeddingLoss
    loss = cls(functools.partial(criterion), num_classes=4)
    assert loss.predict(loss.prototypes.detach()[[2, 0, 3]] * 3).tolist() == [2, 0, 3]


def test_triplets_pair_same_class_positives_with_other_class_negatives():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2])
    embeddings = torch.randn(5, 3)
    anchors, positives, negatives = mine_triplets(embeddings, labels)
    assert anchors.tolist() == [0, 1, 2, 3]  # the lone class-2 sample has no positive
    assert (labels[positives] == labels[anchors]).all() and (positives != anchors).all()
    assert (labels[negatives] != labels[anchors]).all()
    distances = torch.cdist(embeddings, embeddings)
    for a, n in zip(anchors, negatives, strict=True):  # the hardest (closest) negative
        others = labels != labels[a]
        assert distances[a, n] == distances[a][others].min()


def test_triplet_class_means_update_only_in_training_and_drive_prediction():
    loss = BatchTripletLoss(
        functools.partial(torch.nn.TripletMarginLoss), num_classes=2, prototype_momentum=0.0
    )
    embeddings = torch.tensor([[1.0, 0.0], [1.2, 0.0], [-1.0, 0.0], [-1.2, 0.0]])
    loss(embeddings, torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(loss.prototypes, torch.tensor([[1.1, 0.0], [-1.1, 0.0]]))
    loss.eval()
    loss(embeddings * 5, torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(loss.prototypes, torch.tensor([[1.1, 0.0], [-1.1, 0.0]]))
    assert loss.predict(torch.tensor([[0.5, 0.3], [-2.0, 1.0]])).tolist() == [0, 1]
    assert "prototypes" in loss.state_dict()
