"""Gen1-format event detection: the .dat reader against bytes packed by hand, SFOD's binning checked event by
event, the evaluation filter, one sample per labelled timestamp, each one-line error, and the embedded
detect_events set written once in that format and read back by the same loader."""

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikesweep import cli
from spikesweep.data import DataError, build_datasets
from spikesweep.data.gen1 import EventDetection, bin_events
from spikesweep.data.prophesee_dat import EVENTS, DatFile, read_header, write_dat
from tests.conftest import compose
from tests.data import fixtures

SMALL_EVENTS = ("dataset=detect_events", "dataset.train_recordings=2", "dataset.val_recordings=1",
                "dataset.test_recordings=1", "dataset.duration_ms=400")


def _build(data_dir: Path, *overrides: str):
    cfg = compose("dataset=gen1", f"paths.data_dir={data_dir}", "dataset/augment=none", *overrides)
    return build_datasets(cfg.dataset, cfg.paths.data_dir)


def _one_line_error(data_dir: Path, *overrides: str) -> str:
    with pytest.raises(DataError) as err:
        _build(data_dir, *overrides)
    assert "\n" not in str(err.value)
    return str(err.value)


def _events(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=EVENTS)
    for i, row in enumerate(rows):
        out[i] = row
    return out


@pytest.fixture()
def gen1_dir(tmp_path) -> Path:
    fixtures.make_gen1(tmp_path)
    return tmp_path


def test_dat_reader_decodes_bytes_packed_by_hand(tmp_path):
    path = tmp_path / "hand_td.dat"
    header = b"% Data file containing Event2D events.\n% Version 2\n% Height 240\n% Width 304\n"
    events = [(5, 303, 239, 1), (10, 0, 0, 0), (10, 16383, 16383, 1), (20, 1, 2, 0)]
    body = b"".join(struct.pack("<II", t, x | (y << 14) | (p << 28)) for t, x, y, p in events)
    path.write_bytes(header + bytes([0, 8]) + body)
    head = read_header(path)
    assert (head.offset, head.count, head.event_type, head.width, head.height) == (len(header) + 2, 4, 0, 304, 240)
    read = DatFile(path).read()
    assert [tuple(int(v) for v in e) for e in read] == events
    assert [int(t) for t in DatFile(path).window(10, 20)["t"]] == [10, 10]  # [t0, t1): binary search on t
    assert len(DatFile(path).window(21, 99)) == 0
    # bits above 28 (Prophesee leaves them for other fields) do not leak into x, y or p
    path.write_bytes(header + bytes([0, 8]) + struct.pack("<II", 7, 3 | (4 << 14) | (1 << 28) | (1 << 31)))
    assert tuple(int(v) for v in DatFile(path).read()[0]) == (7, 3, 4, 1)
    # a file without header lines starts with its events (the toolbox's rule for old files)
    path.write_bytes(body)
    assert read_header(path).offset == 0 and len(DatFile(path).read()) == 4


def test_writer_output_reads_back(tmp_path):
    events = _events([(0, 1, 2, 1), (999, 303, 239, 0), (4_000_000_000, 7, 8, 1)])
    write_dat(tmp_path / "w_td.dat", events, 304, 240)
    assert np.array_equal(DatFile(tmp_path / "w_td.dat").read(), events)
    with pytest.raises(ValueError, match="sensor"):
        write_dat(tmp_path / "bad_td.dat", _events([(0, 304, 0, 1)]), 304, 240)


def test_truncated_dat_files_fail_in_one_line(tmp_path):
    path = tmp_path / "cut_td.dat"
    path.write_bytes(fixtures.gen1_dat_bytes([(1, 2, 3, 1), (2, 3, 4, 0)])[:-3])
    with pytest.raises(DataError, match=r"cut_td.dat is truncated: 13 event bytes") as err:
        read_header(path)
    assert "\n" not in str(err.value)
    path.write_bytes(b"% Height 240\n% Width 304\n\x00")  # the type byte without the size byte
    with pytest.raises(DataError, match="cut_td.dat is truncated: its header lacks the event type and size"):
        read_header(path)


def test_binning_puts_each_event_in_its_step_bin_channel_and_pixel():
    # window [1000, 101000), T=5 steps of 20 ms, 2 bins of 10 ms; channels OFF b1, OFF b0, ON b0, ON b1
    events = _events([
        (1000 + 45_000, 10, 20, 1),  # step 2, bin 0, ON -> channel 2
        (1000 + 59_999, 10, 20, 0),  # step 2, bin 1, OFF -> channel 0
        (1000 + 60_000, 10, 20, 0),  # step 3, bin 0, OFF -> channel 1
        (1000 + 99_999, 303, 239, 1),  # last step, bin 1, ON -> channel 3
        (1000 + 99_999, 400, 239, 1),  # beyond the sensor: clipped to its edge, counted twice
        (1000, 0, 0, 1),  # the window's first microsecond: step 0, bin 0, ON
        (999, 5, 5, 1), (101_000, 5, 5, 1),  # outside the window
    ])
    frames = bin_events(events, 1000, 100_000, 5, 2, 304, 240)
    assert frames.shape == (5, 4, 240, 304) and frames.dtype == np.float32
    expected = {(2, 2, 20, 10): 1, (2, 0, 20, 10): 1, (3, 1, 20, 10): 1, (4, 3, 239, 303): 2, (0, 2, 0, 0): 1}
    assert frames.sum() == 6
    for where, count in expected.items():
        assert frames[where] == count, where
    on_canvas = bin_events(events, 1000, 100_000, 5, 2, 304, 240, canvas=(256, 320))
    assert on_canvas.shape == (5, 4, 256, 320) and np.array_equal(on_canvas[..., :240, :304], frames)


def test_one_sample_per_labelled_timestamp_with_its_window(gen1_dir):
    bundle = _build(gen1_dir)
    assert bundle.meta.input_shape == (4, 256, 320) and bundle.meta.temporal and bundle.meta.time_steps == 5
    assert isinstance(bundle.train, EventDetection)
    assert list(bundle.train.index.ts) == [50_000, 200_000, 400_000, 500_000] * 2  # two recordings, sorted
    frames, target = bundle.train[1]  # rec0 at 0.2 s: events of [0.1 s, 0.2 s), one per millisecond
    assert frames.shape == (5, 4, 256, 320) and frames.dtype == torch.float32
    assert frames.sum() == 100 and frames[..., 240:, :].sum() == 0 and frames[..., 304:].sum() == 0
    t, x, y, p = fixtures.gen1_event(145)  # 45 ms into the window: step 2, bin 0; odd ms: ON -> channel 2
    assert (t, p) == (145_000, 1) and frames[2, 2, y, x] == 1
    t, x, y, p = fixtures.gen1_event(100)  # the window's first event: step 0, bin 0, OFF -> channel 1
    assert frames[0, 1, y, x] == 1
    # track 1's last row at that time, the pedestrian, and (training is unfiltered) the small car
    expected = torch.tensor([[0, 10, 10, 70, 50, 0], [1, 100, 50, 125, 100, 0], [0, 200, 100, 215, 115, 0]])
    assert target.dtype == torch.float32 and torch.equal(target, expected.float())
    assert torch.equal(bundle.train[2][1], torch.tensor([[0.0, 0, 200, 55, 240, 0]]))  # clipped to the sensor


def test_evaluation_filter_on_the_test_split(gen1_dir):
    bundle = _build(gen1_dir)
    assert list(bundle.test.index.ts) == [200_000, 400_000, 500_000] * 2  # t <= 0.1 s skipped
    assert torch.equal(bundle.test[0][1], torch.tensor([[0.0, 10, 10, 70, 50, 0], [1, 100, 50, 125, 100, 0]]))
    assert bundle.test[2][1].shape == (0, 6)  # its only box is 15 px high: an empty frame, kept
    filtered = _build(gen1_dir, "dataset.filter_train=true", "dataset.skip_us=0")
    assert list(filtered.train.index.ts) == [50_000, 200_000, 400_000, 500_000] * 2
    assert len(filtered.train[1][1]) == 2
    assert len(_build(gen1_dir, "dataset.min_box_diag=0", "dataset.min_box_side=0").test[0][1]) == 3


def test_hflip_mirrors_window_and_boxes(gen1_dir):
    flipped = _build(gen1_dir, "dataset/augment=detection_flip", "dataset.augment.hflip=1.0")
    plain = _build(gen1_dir)
    frames, target = flipped.train[1]
    assert torch.equal(frames[..., :240, :304], plain.train[1][0][..., :240, :304].flip(-1))
    assert torch.equal(target[0], torch.tensor([0.0, 234, 10, 294, 50, 0]))
    assert torch.equal(flipped.test[0][0], plain.test[0][0])  # evaluation is never augmented


def test_unpadded_input_is_the_sensor(gen1_dir):
    bundle = _build(gen1_dir, "dataset.pad_multiple=1", "dataset.input_shape=[4,240,304]")
    assert bundle.train[0][0].shape == (5, 4, 240, 304)


def test_missing_folders_and_unpaired_files_fail_in_one_line(gen1_dir, tmp_path):
    assert "unpack the Gen1 Automotive Detection Dataset" in _one_line_error(tmp_path / "nowhere")
    message = _one_line_error(gen1_dir, "dataset.test_split=valid")
    assert f"{gen1_dir / 'gen1' / 'valid'} not found" in message
    (gen1_dir / "gen1" / "train" / "rec1_bbox.npy").unlink()
    assert "rec1_td.dat has no rec1_bbox.npy beside it" in _one_line_error(gen1_dir)
    (gen1_dir / "gen1" / "train" / "rec1_td.dat").unlink()
    (gen1_dir / "gen1" / "test" / "rec1_td.dat").unlink()
    assert "rec1_bbox.npy has no rec1_td.dat beside it" in _one_line_error(gen1_dir)


def test_bad_files_fail_in_one_line(gen1_dir):
    dat = gen1_dir / "gen1" / "test" / "rec0_td.dat"
    dat.write_bytes(dat.read_bytes()[:-1])
    assert "rec0_td.dat is truncated" in _one_line_error(gen1_dir)
    dat.write_bytes(fixtures.gen1_dat_bytes([(1, 2, 3, 1)], width=1280, height=720))
    assert "from a 1280x720 sensor" in _one_line_error(gen1_dir)
    dat.write_bytes(fixtures.gen1_dat_bytes([(1, 2, 3, 1)]))
    boxes = gen1_dir / "gen1" / "test" / "rec0_bbox.npy"
    np.save(boxes, fixtures.gen1_boxes([(300_000, 900, 400, 120, 80, 0, 1)]))  # a 1280x720 camera's box
    message = _one_line_error(gen1_dir)
    assert "rec0_bbox.npy: box 0 at t=300000 us" in message and "dataset.box_tolerance=100" in message
    np.save(boxes, fixtures.gen1_boxes([(300_000, 10, 10, 30, 30, 2, 1)]))
    assert "class_id 2 but dataset.num_classes=2" in _one_line_error(gen1_dir)
    np.save(boxes, np.zeros(3, dtype=[("time", "<u8"), ("x", "<f4")]))
    assert "lacks the box fields" in _one_line_error(gen1_dir)


def test_an_empty_split_fails_in_one_line(gen1_dir):
    for path in (gen1_dir / "gen1" / "test").iterdir():
        path.unlink()
    assert "an empty split" in _one_line_error(gen1_dir)
    fixtures.make_gen1(gen1_dir)
    assert "an empty split" in _one_line_error(gen1_dir, "dataset.skip_us=600000")  # every label skipped


def test_detect_events_written_once_in_gen1_format_and_read_back(tmp_path):
    cfg = compose(*SMALL_EVENTS, f"paths.cache_dir={tmp_path}")
    bundle = build_datasets(cfg.dataset, cfg.paths.data_dir)
    root = Path(bundle.meta.source)
    assert isinstance(bundle.train, EventDetection) and bundle.meta.input_shape == (4, 64, 64)
    assert sorted(p.name for p in (root / "val").iterdir()) == ["val_0000_bbox.npy", "val_0000_td.dat"]
    header = read_header(root / "train" / "train_0000_td.dat")
    assert (header.width, header.height) == (64, 64) and header.count > 100
    boxes = np.load(root / "train" / "train_0000_bbox.npy")
    assert boxes.dtype == fixtures.GEN1_BOX_DTYPE and set(np.unique(boxes["ts"])) == set(range(50_000, 400_001, 50_000))
    assert (len(bundle.train), len(bundle.test)) == (16, 6)  # 8 labels per recording; test skips 50, 100 ms
    frames, target = bundle.test[0]
    assert frames.shape == (5, 4, 64, 64) and frames.sum() > 0 and len(target) >= 1
    assert (target[:, 1:5] >= 0).all() and (target[:, 1:5] <= 64).all() and set(target[:, 0].tolist()) <= {0, 1}
    # the objects' edges fire: events are denser inside the labelled boxes than outside (noise)
    inside = torch.zeros(64, 64, dtype=torch.bool)
    for _, x1, y1, x2, y2, _ in target.int().tolist():
        inside[y1:y2, x1:x2] = True
    counts = frames.sum((0, 1))
    assert counts[inside].mean() > 2 * counts[~inside].mean()
    stamp = (root / "prepare.json").stat().st_mtime_ns
    again = build_datasets(cfg.dataset, cfg.paths.data_dir)
    assert Path(again.meta.source) == root and (root / "prepare.json").stat().st_mtime_ns == stamp
    assert torch.equal(again.test[0][0], frames)


def test_prepare_writes_detect_events_and_names_what_gen1_lacks(tmp_path, capsys):
    assert cli.main(["prepare", *SMALL_EVENTS, f"paths.cache_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "detect_events: 16 train / 6 test samples, 2 classes, [4, 64, 64] per step, T=5" in out
    assert "samples/s" in out and "events/s" in out
    assert cli.main(["prepare", "dataset=gen1", f"paths.data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "gen1/train" in err and "_bbox.npy" in err and "\n" not in err
