"""The one entry point: a vendor slide → a DICOM VL Whole Slide Microscopy Image series.

Every instance is written into a staging folder beside ``output_dir`` (same filesystem) and
moved into ``output_dir`` only when the whole series is complete, so a failed conversion
leaves nothing in ``output_dir``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from pydicom.uid import generate_uid

from dicomizer.encoder_pool import OrderedFrameSink
from dicomizer.encoders import Encoder, make_encoder
from dicomizer.iod import InstanceSpec, SlideContext, build_dataset
from dicomizer.metadata import merge
from dicomizer.options import ConversionOptions
from dicomizer.plan import LevelPlan, PyramidPlan, plan_pyramid
from dicomizer.pyramid_builder import PyramidBuilder
from dicomizer.tasks import PriorityPool
from dicomizer.writer import FrameWriter
from wsi.errors import Conflict, InvalidInput
from wsi.readers import SlideReader, open_slide
from wsi.readers.base import ASSOCIATED_KINDS, AssociatedImage, StoredImage, StoredTiles

ProgressCallback = Callable[[int, int], None]
"""Called with (frames written, frames in total) as the conversion goes on."""

BASE_IMAGE_TYPE = ("ORIGINAL", "PRIMARY", "VOLUME", "NONE")
RESAMPLED_IMAGE_TYPE = ("DERIVED", "PRIMARY", "VOLUME", "RESAMPLED")
ASSOCIATED_IMAGE_TYPES = {
    "label": ("ORIGINAL", "PRIMARY", "LABEL", "NONE"),
    "overview": ("ORIGINAL", "PRIMARY", "OVERVIEW", "NONE"),
    "thumbnail": ("DERIVED", "PRIMARY", "THUMBNAIL", "RESAMPLED"),
}
_PENDING_ROWS = 2
"""Tile rows of frames a level may hold while they are encoded (see encoder_pool)."""


@dataclass(frozen=True)
class LevelSummary:
    """What was written for one instance."""

    name: str
    width: int
    height: int
    tile: int
    frames: int
    passthrough: bool
    transfer_syntax_uid: str
    bytes: int


@dataclass(frozen=True)
class ConversionResult:
    """The written files (base level first), the series and a summary."""

    files: tuple[Path, ...]
    study_uid: str
    series_uid: str
    reader: str
    instances: tuple[LevelSummary, ...]
    seconds: float

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"series {self.series_uid} (study {self.study_uid}), reader {self.reader}, "
                 f"{len(self.files)} instance(s) in {self.seconds:.2f} s"]
        for item in self.instances:
            how = "passthrough" if item.passthrough else "encoded"
            lines.append(f"  {item.name:<12} {item.width}x{item.height} tile {item.tile} "
                         f"{item.frames} frame(s) {how} {item.bytes / 1e6:.1f} MB")
        return "\n".join(lines)


def convert(
    input_path: Path | str,
    output_dir: Path | str,
    options: ConversionOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ConversionResult:
    """Convert one slide into ``output_dir`` (created if missing, files must not exist).

    Raises :class:`wsi.errors.InvalidInput` / :class:`wsi.errors.Unsupported` for slides that
    cannot be read and :class:`wsi.errors.Conflict` if ``output_dir`` already holds files of
    the names this conversion writes.
    """
    started = time.monotonic()
    options = options or ConversionOptions()
    output_dir = Path(output_dir)
    with open_slide(input_path, options.reader) as reader:
        subsampling = options.subsampling or (
            "444" if reader.properties.chroma_subsampled is False else "420")
        encoder = make_encoder(options.codec, options.quality, subsampling)
        plan = plan_pyramid(reader.levels, options, encoder)
        associated = _associated(reader, options, encoder) if options.include_associated \
            else []
        names = [f"level-{level.index}.dcm" for level in plan.levels]
        names += [f"{image.kind}.dcm" for image in associated]
        clashes = [name for name in names if (output_dir / name).exists()]
        if clashes:
            raise Conflict(f"{output_dir} already holds {clashes[0]}; use an empty folder")
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial",
                                        dir=output_dir.parent))
        try:
            context = _context(reader, options, Path(input_path))
            job = _Job(reader, plan, encoder, context, staging, options, progress)
            summaries = job.write_pyramid() + [job.write_associated(a) for a in associated]
            output_dir.mkdir(parents=True, exist_ok=True)
            files = []
            for name in names:
                os.replace(staging / name, output_dir / name)
                files.append(output_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ConversionResult(tuple(files), context.study_uid, context.series_uid,
                                reader.name, tuple(summaries), time.monotonic() - started)


def _associated(reader: SlideReader, options: ConversionOptions,
                encoder: Encoder) -> list[AssociatedImage | StoredImage]:
    """The label, overview and thumbnail: as stored where they can be passed through (JPEG
    output, re-encoding not forced), else decoded, to be encoded."""
    found: list[AssociatedImage | StoredImage] = []
    for kind in ASSOCIATED_KINDS:
        stored = None if options.force_reencode or encoder.name != "jpeg" \
            else reader.associated_stored(kind)
        if stored is not None and \
                stored.encoding.transfer_syntax_uid == encoder.transfer_syntax_uid:
            found.append(stored)
        elif (image := reader.associated(kind)) is not None:
            found.append(image)
    return found


def _context(reader: SlideReader, options: ConversionOptions, source: Path) -> SlideContext:
    metadata = merge(options.metadata, options.metadata.extra)
    container = metadata.container_identifier or _identifier(source.stem)
    properties = reader.properties
    if properties.mpp is None and options.mpp is None:
        raise InvalidInput(f"{source.name}: the slide does not state its pixel spacing; "
                           "give it with --mpp")
    series_uid = metadata.series_instance_uid or generate_uid()
    return SlideContext(
        study_uid=metadata.study_instance_uid or generate_uid(),
        series_uid=series_uid,
        frame_of_reference_uid=generate_uid(),
        pyramid_uid=generate_uid(),
        dimension_organization_uid=generate_uid(),
        specimen_uid=generate_uid(),
        acquisition_uid=generate_uid(),
        container_id=container,
        specimen_id=metadata.specimen_identifier or container,
        source_name=source.name,
        acquired=datetime.now(),
        metadata=metadata,
        properties=properties,
        software_version=_version(),
    )


def _identifier(stem: str) -> str:
    """A Container Identifier (LO) from a file name."""
    return re.sub(r"[^A-Za-z0-9._ -]", "_", stem)[:64] or "SLIDE"


def _version() -> str:
    try:
        return importlib_metadata.version("wsi-archive")
    except importlib_metadata.PackageNotFoundError:
        return "0"


class _Job:
    """One conversion's writers and specs."""

    def __init__(self, reader: SlideReader, plan: PyramidPlan, encoder: Encoder,
                 context: SlideContext, staging: Path, options: ConversionOptions,
                 progress: ProgressCallback | None) -> None:
        self.reader, self.plan, self.encoder = reader, plan, encoder
        self.context, self.staging, self.options = context, staging, options
        self._progress = progress
        properties = context.properties
        mpp = properties.mpp or (float(options.mpp or 0), float(options.mpp or 0))
        self.base_spacing_mm = (mpp[1] / 1000.0, mpp[0] / 1000.0)
        self.source_lossy = (properties.lossy_method,) if properties.lossy_method else ()
        self.total = sum(level.frames for level in plan.levels)
        self.done = 0
        self._instance_number = 0

    def _frames_written(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)

    def _spacing(self, width: int, height: int) -> tuple[float, float]:
        base = self.plan.levels[0]
        row_mm, column_mm = self.base_spacing_mm
        return (row_mm * base.height / height, column_mm * base.width / width)

    def _lossy(self, passthrough: bool) -> tuple[str, ...]:
        methods = list(self.source_lossy)
        if not passthrough and self.encoder.lossy_method:
            methods.append(self.encoder.lossy_method)
        # The same method applied twice is listed once per application (C.7.6.1.1.5).
        return tuple(methods)

    def _spec(self, level: LevelPlan) -> InstanceSpec:
        self._instance_number += 1
        stored = level.passthrough
        return InstanceSpec(
            sop_uid=generate_uid(),
            instance_number=self._instance_number,
            image_type=BASE_IMAGE_TYPE if level.index == 0 else RESAMPLED_IMAGE_TYPE,
            width=level.width,
            height=level.height,
            tile_width=level.tile,
            tile_height=level.tile,
            transfer_syntax_uid=(stored or self.encoder).transfer_syntax_uid,
            photometric=(stored or self.encoder).photometric,
            lossy_methods=self._lossy(stored is not None),
            pixel_spacing_mm=self._spacing(level.width, level.height),
        )

    def write_pyramid(self) -> list[LevelSummary]:
        """Write every level, in one pass over each source level used."""
        specs = [self._spec(level) for level in self.plan.levels]
        writers: list[FrameWriter] = []
        try:
            for level, spec in zip(self.plan.levels, specs, strict=True):
                path = self.staging / f"level-{level.index}.dcm"
                writers.append(FrameWriter(path, build_dataset(self.context, spec), level.frames))
            with PriorityPool(self.options.workers, "dicomizer") as pool:
                sinks = [OrderedFrameSink(pool, w, _PENDING_ROWS * level.tiles_across,
                                          self._frames_written)
                         for w, level in zip(writers, self.plan.levels, strict=True)]
                PyramidBuilder(self.reader, self.plan, self.encoder.encode, sinks, pool,
                               self.options.workers).run()
            for writer in writers:
                writer.close()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        return [
            LevelSummary(f"level-{level.index}", level.width, level.height, level.tile,
                         level.frames, level.passthrough is not None, spec.transfer_syntax_uid,
                         writer.bytes_written)
            for level, spec, writer in zip(self.plan.levels, specs, writers, strict=True)
        ]

    def write_associated(self, image: AssociatedImage | StoredImage) -> LevelSummary:
        """Write a label, overview or thumbnail as a single-frame instance, its stored
        stream passed through when it is a :class:`StoredImage`."""
        self._instance_number += 1
        spacing = self._spacing(image.width, image.height) if image.kind == "thumbnail" else None
        encoding: StoredTiles | Encoder
        lossy: tuple[str, ...]
        if isinstance(image, StoredImage):
            encoding, frame = image.encoding, image.frame
            lossy = (encoding.lossy_method,) if encoding.lossy_method else ()
        else:
            encoding, frame = self.encoder, self.encoder.encode(image.pixels)
            lossy = self._lossy(False)
        spec = InstanceSpec(
            sop_uid=generate_uid(),
            instance_number=self._instance_number,
            image_type=ASSOCIATED_IMAGE_TYPES[image.kind],
            width=image.width,
            height=image.height,
            tile_width=image.width,
            tile_height=image.height,
            transfer_syntax_uid=encoding.transfer_syntax_uid,
            photometric=encoding.photometric,
            lossy_methods=lossy,
            pixel_spacing_mm=spacing,
        )
        with FrameWriter(self.staging / f"{image.kind}.dcm", build_dataset(self.context, spec),
                         1) as writer:
            writer.write_frame(frame)
        return LevelSummary(image.kind, image.width, image.height, image.width, 1,
                            isinstance(image, StoredImage), spec.transfer_syntax_uid,
                            writer.bytes_written)
