"""The pyramid model: levels, TILED_FULL arithmetic, concatenations, sparse tiles."""

from __future__ import annotations

import pytest

from wsi.errors import NotFound
from wsi.pyramid import (
    FramePosition,
    FrameRef,
    InstanceFacts,
    Size,
    associated_images,
    build_pyramids,
)

JPEG = "1.2.840.10008.1.2.4.50"


def facts(sop: str, width: int, height: int, *, tile: int = 256, flavor: str = "VOLUME",
          **kwargs: object) -> InstanceFacts:
    grid = (-(-width // tile)) * (-(-height // tile))
    planes = kwargs.get("focal_planes", (0.0,))
    paths = kwargs.get("optical_paths", ("1",))
    values: dict = {
        "number_of_frames": grid * len(planes) * len(paths),  # type: ignore[arg-type]
        "optical_paths": paths, "focal_planes": planes,
        "pixel_spacing": (0.00025 * 1000 / width, 0.00025 * 1000 / width),
        **kwargs,
    }
    return InstanceFacts(sop, ("ORIGINAL", "PRIMARY", flavor), Size(width, height),
                         Size(tile, tile), transfer_syntax_uid=JPEG, **values)


def test_levels_ordered_from_the_highest_resolution() -> None:
    (pyramid,) = build_pyramids([facts("b", 500, 350), facts("a", 1000, 700),
                                 facts("c", 250, 175), facts("l", 400, 300, flavor="LABEL")])

    assert [lv.size for lv in pyramid.levels] == [Size(1000, 700), Size(500, 350),
                                                  Size(250, 175)]
    assert [lv.downsample for lv in pyramid.levels] == [1.0, 2.0, 4.0]
    assert [lv.grid for lv in pyramid.levels] == [Size(4, 3), Size(2, 2), Size(1, 1)]


def test_tiled_full_frame_order_is_column_row_plane_path() -> None:
    (pyramid,) = build_pyramids([facts("a", 1000, 700, focal_planes=(0.0, 2.0),
                                       optical_paths=("r", "g"))])

    assert pyramid.locate(0, 0, 0) == FrameRef("a", 1)
    assert pyramid.locate(0, 3, 0) == FrameRef("a", 4)
    assert pyramid.locate(0, 1, 2) == FrameRef("a", 10)
    assert pyramid.locate(0, 1, 2, z=1) == FrameRef("a", 22)
    assert pyramid.locate(0, 1, 2, z=1, path="g") == FrameRef("a", 46)


def test_concatenation_parts_share_one_frame_sequence() -> None:
    parts = [
        facts("p1", 1000, 700, number_of_frames=5, concatenation_uid="9",
              concatenation_frame_offset=0),
        facts("p2", 1000, 700, number_of_frames=7, concatenation_uid="9",
              concatenation_frame_offset=5),
    ]

    (pyramid,) = build_pyramids(reversed(parts))

    assert pyramid.locate(0, 0, 1) == FrameRef("p1", 5)
    assert pyramid.locate(0, 1, 1) == FrameRef("p2", 1)
    assert pyramid.locate(0, 3, 2) == FrameRef("p2", 7)


def test_sparse_tiles_missing_tiles_and_several_instances() -> None:
    first = facts("s1", 600, 300, dimension_organization="TILED_SPARSE", number_of_frames=2,
                  frame_positions=(FramePosition(2, 1, 0.0, "1"), FramePosition(0, 0, 0.0, "1")))
    second = facts("s2", 600, 300, dimension_organization="TILED_SPARSE", number_of_frames=1,
                   frame_positions=(FramePosition(1, 0, 0.0, "1"),))

    (pyramid,) = build_pyramids([first, second])

    assert pyramid.locate(0, 0, 0) == FrameRef("s1", 2)
    assert pyramid.locate(0, 2, 1) == FrameRef("s1", 1)
    assert pyramid.locate(0, 1, 0) == FrameRef("s2", 1)
    assert pyramid.locate(0, 1, 1) is None
    assert len(pyramid.base.instances) == 2


def test_outside_the_grid_or_selection_is_not_found() -> None:
    (pyramid,) = build_pyramids([facts("a", 1000, 700)])

    for args in [(1, 0, 0), (0, 4, 0), (0, 0, 3), (0, -1, 0)]:
        with pytest.raises(NotFound):
            pyramid.locate(*args)
    with pytest.raises(NotFound):
        pyramid.locate(0, 0, 0, z=1)
    with pytest.raises(NotFound):
        pyramid.locate(0, 0, 0, path="x")


def test_pyramids_split_by_pyramid_uid_and_unknown_layouts_left_out() -> None:
    pyramids = build_pyramids([
        facts("big", 2000, 1000, pyramid_uid="1"), facts("small", 500, 400, pyramid_uid="2"),
        facts("3d", 500, 400, dimension_organization="3D"),
        facts("short", 700, 700, dimension_organization="", number_of_frames=2),
    ])

    assert [p.uid for p in pyramids] == ["1", "2"]
    assert [lv.instances[0].sop_instance_uid for p in pyramids for lv in p.levels] == [
        "big", "small"]


def test_associated_images_by_flavor() -> None:
    found = associated_images([facts("v", 1000, 700), facts("l", 400, 300, flavor="LABEL"),
                               facts("o1", 300, 100, flavor="OVERVIEW"),
                               facts("o2", 900, 300, flavor="OVERVIEW")])

    assert {k: v.sop_instance_uid for k, v in found.items()} == {"label": "l", "overview": "o2"}
