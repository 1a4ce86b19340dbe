import numpy as np
import pytest

from mdllm_kit.errors import ModelError
from mdllm_kit.lm.codec import FrameCodec
from mdllm_kit.lm.data import WindowDataset, make_datasets, time_split


def _frames(n, L=4, start=0):
    # frame i carries token (start + i) % 8 everywhere, so frames are identifiable
    return np.repeat(((np.arange(n) + start) % 8)[:, None], L, axis=1)


def _codec(L=4):
    return FrameCodec(L, 8, ((0, 8),) * L)


def test_time_split():
    tr, va = time_split(100, 0.1)
    assert tr == range(0, 90) and va == range(90, 100)


def test_windows_and_labels():
    codec = _codec()
    ds = WindowDataset([_frames(10)], codec, window_frames=3, stride=2, loss_frames="last")
    assert len(ds) == 4  # starts 0, 2, 4, 6
    item = ds[1]
    assert item["input_ids"].shape == (codec.sequence_length(4),)
    np.testing.assert_array_equal(codec.decode_frames(item["input_ids"].numpy()), _frames(10)[2:6])
    labels = item["labels"].numpy()
    n_labelled = (labels != -100).sum()
    assert n_labelled == codec.frame_length  # last frame and its delimiter only
    all_ds = WindowDataset([_frames(10)], codec, window_frames=3, loss_frames="all")
    assert (all_ds[0]["labels"].numpy() != -100).sum() == 4 * codec.frame_length  # everything but <bos>


def test_no_leakage_and_no_crossing():
    codec = _codec()
    trajs = [np.full((20, 4), 1), np.full((30, 4), 2)]
    trajs[0][16:] = 5  # validation part of trajectory 0 (last 20 %)
    trajs[1][24:] = 6  # validation part of trajectory 1
    train, val, info = make_datasets(trajs, codec, window_frames=2, stride=1, val_fraction=0.2)
    for i in range(len(train)):
        w = train.window(i)
        assert not np.isin(w, [5, 6]).any()  # no validation frame in a training window
        assert len(np.unique(w)) == 1  # never mixes two trajectories
    for i in range(len(val)):
        assert np.isin(val.window(i), [5, 6]).all()
    assert info.train_windows == (16 - 2) + (24 - 2)
    assert info.val_windows == (4 - 2) + (6 - 2)


def test_too_short():
    with pytest.raises(ModelError, match="no training window"):
        make_datasets([_frames(5)], _codec(), window_frames=10, stride=1, val_fraction=0.1)


def test_subset_is_spread():
    ds = WindowDataset([_frames(50)], _codec(), window_frames=2)
    sub = ds.subset(4)
    assert len(sub) == 4 and sub.index[0] == ds.index[0] and sub.index[-1] == ds.index[-1]
