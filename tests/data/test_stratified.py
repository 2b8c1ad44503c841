from collections import Counter

import pytest

from trainlab.data.stratified import check_fractions, stratified_split
from trainlab.errors import ConfigError


def test_split_is_stratified_disjoint_complete_and_80_10_10():
    labels = [0] * 100 + [1] * 100
    train, val, test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    assert sorted(train + val + test) == list(range(200))
    assert (len(train), len(val), len(test)) == (160, 20, 20)
    for part, n in ((train, 80), (val, 10), (test, 10)):
        assert Counter(labels[i] for i in part) == {0: n, 1: n}


def test_split_depends_only_on_seed():
    labels = [i % 3 for i in range(90)]
    assert stratified_split(labels, (0.8, 0.1, 0.1), 7) == stratified_split(labels, (0.8, 0.1, 0.1), 7)
    assert stratified_split(labels, (0.8, 0.1, 0.1), 7) != stratified_split(labels, (0.8, 0.1, 0.1), 8)


def test_small_classes_still_reach_every_part_and_keep_a_training_sample():
    labels = [0, 0, 0, 1, 1, 1]
    train, val, test = stratified_split(labels, (0.8, 0.1, 0.1), 0)
    for part in (train, val, test):
        assert {labels[i] for i in part} == {0, 1}


def test_zero_test_fraction_gives_no_test_part():
    _, _, test = stratified_split([0, 1] * 20, (0.9, 0.1, 0.0), 0)
    assert test == []


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.8, 0.1, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_fractions_name_the_key(bad):
    with pytest.raises(ConfigError, match=r"data\.split"):
        check_fractions(bad)
