"""The corpus builder and datasets: folders, manifests, bad files, splits, cache, windows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_midi

from musicflow.data.build import build_dataset, choose_pitch_range, split_of
from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet
from musicflow.errors import MusicflowError


def test_folder_build_skips_bad_files_and_names_them(corpus_dir, tmp_path):
    ds, report = build_dataset(str(corpus_dir), jobs=1, cache_dir=tmp_path / "c", quiet=True)
    assert sorted(ds.genres) == ["folk", "jazz"]
    assert len(ds) == 5  # three MIDI files and two ABC tunes
    skipped = dict(report.skipped)
    assert set(skipped) == {str(corpus_dir / "folk" / "broken.mid"), str(corpus_dir / "folk" / "empty.mid")}
    assert "empty" in skipped[str(corpus_dir / "folk" / "empty.mid")]
    assert any("broken.mid" in line for line in report.lines())


def test_cache_is_used_on_rebuild(corpus_dir, tmp_path):
    build_dataset(str(corpus_dir), cache_dir=tmp_path / "c", quiet=True)
    ds, report = build_dataset(str(corpus_dir), cache_dir=tmp_path / "c", quiet=True)
    assert report.cached == report.files == 6
    (corpus_dir / "jazz" / "j0.mid").unlink()
    make_midi(corpus_dir / "jazz" / "j0.mid", [(50, 0, 1)])
    _, report = build_dataset(str(corpus_dir), cache_dir=tmp_path / "c", quiet=True)
    assert report.cached == 5  # only the changed file is parsed again


def test_parallel_build_matches_serial(corpus_dir, tmp_path):
    a, _ = build_dataset(str(corpus_dir), jobs=1, cache_dir=None, quiet=True)
    b, _ = build_dataset(str(corpus_dir), jobs=2, cache_dir=None, quiet=True)
    assert a.content_hash() == b.content_hash()


def test_genre_flag_and_manifest(corpus_dir, tmp_path):
    ds, _ = build_dataset(str(corpus_dir / "jazz"), genre="bebop", cache_dir=None, quiet=True)
    assert ds.genres == ["bebop"] and len(ds) == 3
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,genre\n{corpus_dir}/jazz/j1.mid,a\njazz/j2.mid,b\n")
    (tmp_path / "jazz").symlink_to(corpus_dir / "jazz")
    ds, _ = build_dataset(str(manifest), cache_dir=None, quiet=True)
    assert ds.genres == ["a", "b"]


def test_zero_pieces_is_an_error(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "x.mid").write_bytes(b"")
    with pytest.raises(MusicflowError, match="no piece could be read"):
        build_dataset(str(tmp_path), cache_dir=None, quiet=True)


def test_files_outside_genre_folders_need_genre(tmp_path):
    make_midi(tmp_path / "loose.mid", [(60, 0, 1)])
    with pytest.raises(MusicflowError, match="genre=NAME"):
        build_dataset(str(tmp_path), cache_dir=None, quiet=True)


def test_split_is_by_piece_and_deterministic():
    ids = [f"piece{i}" for i in range(2000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "valid", "test")}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["test"] < 0.13


def test_pitch_range_keeps_the_most_notes():
    recs = [{"tonic": 0, "notes": [[p, 0, 1, 80] for p in range(50, 70)] * 10 + [[20, 0, 1, 80]]}]
    low, size, share = choose_pitch_range(recs, None, key_normalize=False)
    assert size == 24 and low <= 50 and low + size >= 70 and share > 0.99  # 20 pitches -> 24
    assert choose_pitch_range(recs, 4, False)[1] == 4


def test_save_load_and_corrupt_dataset(corpus_dir, tmp_path):
    ds, _ = build_dataset(str(corpus_dir), cache_dir=None, quiet=True)
    path = ds.save(tmp_path / "d.npz")
    back = Dataset.load(path)
    assert back.content_hash() == ds.content_hash() and back.spec == ds.spec
    assert "jazz" in back.describe()
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(MusicflowError, match="not a musicflow dataset"):
        Dataset.load(tmp_path / "bad.npz")


def test_windows_and_context(corpus_dir):
    ds, _ = build_dataset(str(corpus_dir), cache_dir=None, quiet=True, key_normalize=False)
    ws = WindowSet(ds, None, window=16, context=64)
    assert len(ws) > 0
    x, ctx, g = ws.batch(np.arange(len(ws)))
    assert x.shape[1:] == (2, ds.spec.pitches, 16) and ctx.shape[1:] == (2, ds.spec.pitches, 64)
    assert g.sum(1).eq(1).all()
    first = np.flatnonzero(ws.starts == ws.piece_starts)
    assert ctx[first].sum() == 0  # nothing precedes a piece's first window
    later = np.flatnonzero(ws.starts > ws.piece_starts)
    assert ctx[later].sum() > 0
    w = ws.balanced_weights()
    per_genre = np.bincount(ws.labels, weights=w)
    assert np.allclose(per_genre, per_genre[0])


def test_start_share_lifts_openings_only_where_they_are_rare(corpus_dir):
    ds, _ = build_dataset(str(corpus_dir), cache_dir=None, quiet=True, key_normalize=False)
    ws = WindowSet(ds, None, window=4, context=16, grid=4)
    opening = ws.starts - ws.piece_starts < ws.context
    natural = np.bincount(ws.labels, weights=opening) / ws.counts()
    assert 0 < natural.min() < natural.max() < 1
    share = float(natural.mean())  # above some genres' own share, below others'
    w = ws.balanced_weights(share)
    per_genre = np.bincount(ws.labels, weights=w)
    assert np.allclose(per_genre, per_genre[0])  # still balanced across genres
    got = np.bincount(ws.labels, weights=w * opening) / per_genre
    assert np.allclose(got, np.maximum(natural, share))
    assert np.array_equal(ws.balanced_weights(0.0), ws.balanced_weights())
