"""Datasets in shards: the same pieces as one file, memory-mapped, streamed by training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_midi

from musicflow.checkpoint import load_checkpoint
from musicflow.cli import main
from musicflow.data.build import build_dataset
from musicflow.data.dataset import Dataset
from musicflow.data.shards import ShardedArray
from musicflow.errors import MusicflowError
from musicflow.training.pieces import CorpusPieces, train_pieces
from musicflow.training.settings import PieceTrainConfig


def test_a_sharded_array_slices_as_the_concatenation_does():
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 9, (int(n), 4)) for n in (3, 0, 5, 1, 7)]
    whole, sharded = np.concatenate(parts), ShardedArray(parts)
    assert len(sharded) == len(whole)
    for a in range(len(whole) + 1):
        for b in range(a, len(whole) + 2):
            np.testing.assert_array_equal(sharded[a:b], whole[a:b])
    np.testing.assert_array_equal(np.asarray(sharded), whole)
    with pytest.raises(TypeError):
        sharded[::2]


@pytest.fixture
def folder(tmp_path):
    """Two genres of MIDI files, one corrupt file among them."""
    rng = np.random.default_rng(1)
    for i in range(14):
        genre = ("jazz", "folk")[i % 2]
        (tmp_path / "src" / genre).mkdir(parents=True, exist_ok=True)
        notes = [(int(60 + rng.integers(-5, 8)), b / 2, b / 2 + 0.5) for b in range(24 + 4 * i)]
        make_midi(tmp_path / "src" / genre / f"{i}.mid", notes)
    (tmp_path / "src" / "folk" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    return tmp_path / "src"


def _same(a: Dataset, b: Dataset) -> None:
    assert a.pieces == b.pieces and a.spec == b.spec and a.genres == b.genres
    assert a.content_hash() == b.content_hash()
    for i in range(len(a)):
        np.testing.assert_array_equal(a.piece_notes(i), b.piece_notes(i))
        np.testing.assert_array_equal(a.piece_bars(i), b.piece_bars(i))


def test_a_sharded_build_holds_what_a_one_file_build_holds(folder, tmp_path):
    one, report = build_dataset(str(folder), jobs=1, cache_dir=None, quiet=True)
    sharded, sreport = build_dataset(str(folder), jobs=2, cache_dir=None, quiet=True,
                                     out=tmp_path / "d.npz", shard_mb=0.001)
    assert sharded.sharded and sharded.shards > 3 and not one.sharded
    assert isinstance(sharded.notes, ShardedArray)
    assert isinstance(sharded.notes.parts[0], np.memmap)  # mapped, not read
    _same(one, sharded)
    _same(one, Dataset.load(tmp_path / "d.npz"))
    broken = [str(folder / "folk" / "broken.mid")]
    assert [p for p, _ in sreport.skipped] == [p for p, _ in report.skipped] == broken
    # Written back as one file, it is the one-file dataset.
    sharded.save(tmp_path / "one.npz")
    _same(one, Dataset.load(tmp_path / "one.npz"))


def test_a_rebuild_replaces_the_shards_and_leaves_no_stale_folder(folder, tmp_path):
    out = tmp_path / "data" / "d.npz"
    build_dataset(str(folder), cache_dir=None, quiet=True, out=out, shard_mb=0.001)
    first = sorted(p.name for p in out.parent.iterdir())
    build_dataset(str(folder), cache_dir=None, quiet=True, out=out, shard_mb=1.0)
    second = sorted(p.name for p in out.parent.iterdir())
    assert len(first) == len(second) == 2 and first != second  # the index and one shard folder
    assert Dataset.load(out).shards == 1
    build_dataset(str(folder), cache_dir=None, quiet=True, out=out, shard_mb=1.0)  # the same again
    assert sorted(p.name for p in out.parent.iterdir()) == second


def test_a_missing_or_foreign_shard_is_a_one_line_error(folder, tmp_path):
    out = tmp_path / "d.npz"
    ds, _ = build_dataset(str(folder), cache_dir=None, quiet=True, out=out, shard_mb=0.001)
    folder_ = next(p for p in tmp_path.iterdir() if p.name.startswith("d.shards-"))
    del ds
    (folder_ / "notes-00001.npy").unlink()
    with pytest.raises(MusicflowError, match=r"notes-00001\.npy: shard of .*d\.npz is missing"):
        Dataset.load(out)
    np.save(folder_ / "notes-00001.npy", np.zeros((2, 3), np.int32))
    with pytest.raises(MusicflowError, match="not a \\(notes, 4\\) array"):
        Dataset.load(out)
    res = CliRunner().invoke(main, ["data", "info", str(out)])
    assert res.exit_code == 2 and "Traceback" not in res.output and "rebuild the dataset" in res.output


def test_training_streams_a_sharded_dataset_and_learns_what_it_learns_from_one_file(folder, tmp_path):
    one, _ = build_dataset(str(folder), jobs=1, cache_dir=None, quiet=True)
    one.save(tmp_path / "one.npz")
    one.save(tmp_path / "sharded.npz", shard_mb=0.001)
    sharded = Dataset.load(tmp_path / "sharded.npz")
    eager, lazy = CorpusPieces.load(one, "train"), CorpusPieces.load(sharded, "train")
    assert isinstance(eager.states, list) and not isinstance(lazy.states, list)
    np.testing.assert_array_equal(eager.lengths, lazy.lengths)
    picks = [(i, int(eager.bars[i][1])) for i in range(len(eager.lengths))]
    for x, y in zip(eager.batch(picks, 16, shift=2), lazy.batch(picks, 16, shift=2)):
        torch.testing.assert_close(x, y)
    cfg = PieceTrainConfig(steps=6, batch_size=4, crop=16, valid_every=3, warmup=1, valid_windows=2)
    small = {"rnn_hidden": 8, "channels": 4, "reach": 2, "dropout": 0.1}
    a = train_pieces(tmp_path / "one.npz", tmp_path / "a.pt", cfg, small, quiet=True)
    b = train_pieces(tmp_path / "sharded.npz", tmp_path / "b.pt", cfg, small, quiet=True)
    strip = [{k: v for k, v in h.items() if k != "elapsed_s"} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "elapsed_s"} for h in b["history"]]
    assert a["data_hash"] == b["data_hash"]
    for k, v in load_checkpoint(tmp_path / "a.pt").model.state_dict().items():
        torch.testing.assert_close(load_checkpoint(tmp_path / "b.pt").model.state_dict()[k], v)


def test_data_build_writes_shards_from_the_command_line(folder, tmp_path):
    out = tmp_path / "d.npz"
    res = CliRunner().invoke(main, ["data", "build", "--source", str(folder), "-o", str(out), "--shard-mb",
                                    "0.001", "--jobs", "1", "--no-cache", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "shard(s) beside it" in res.output and "skipped" in res.output and "broken.mid" in res.output
    res = CliRunner().invoke(main, ["data", "info", str(out)])
    assert res.exit_code == 0 and "memory-mapped shard(s)" in res.output
    res = CliRunner().invoke(main, ["data", "build", "--source", str(folder), "-o", str(out),
                                    "--shard-mb", "-1"])
    assert res.exit_code == 2 and "--shard-mb -1.0: give a positive size" in res.output
