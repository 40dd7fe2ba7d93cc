"""STOW-RS (PS3.18 §10.5): streamed multipart/related application/dicom into the one ingest."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, post

from archive.ingest import PreparedInstance
from archive.parsing import Expected, StoredInstance
from archive.status import failure_status
from archive.storage import StagedFile
from dicomweb.errors import UnsupportedMediaType
from dicomweb.multipart import PartData, PartEnd, PartStart, iter_parts, parse_content_type
from dicomweb.services import Services
from dicomweb.urls import dicomweb_base, instance_url, path_uids, study_url
from wsi.errors import InvalidInput, WsiArchiveError

log = logging.getLogger(__name__)

_FLUSH_BYTES = 1024 * 1024
DICOM_JSON = "application/dicom+json"


class _PartWriter:
    """Collects one part's data into a staged file, writing in ≥1 MiB steps off the loop.

    The chunks are handed to the worker thread as they came, not joined: a copy of every byte
    on the event loop was a visible share of its time. Memory bound: at most ``_FLUSH_BYTES``
    plus one network chunk of the part is buffered.
    """

    def __init__(self, services: Services, staged: StagedFile) -> None:
        self._services = services
        self.staged = staged
        self._buffer: list[bytes | memoryview] = []
        self._buffered = 0

    async def add(self, data: bytes | memoryview) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            await self._services.blocking.run(self.staged.write_all, self.take_buffer())

    def take_buffer(self) -> list[bytes | memoryview]:
        chunks = self._buffer
        self._buffer, self._buffered = [], 0
        return chunks


def _check_request_type(request: Request) -> str:
    header = request.headers.get("content-type")
    if not header:
        raise UnsupportedMediaType("Content-Type is missing; expected multipart/related")
    media_type, params = parse_content_type(header)
    if media_type != "multipart/related":
        raise UnsupportedMediaType(f"expected multipart/related, not {media_type}")
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise UnsupportedMediaType(
            f'only type="application/dicom" is supported for STOW-RS, not {part_type}'
        )
    boundary = params.get("boundary")
    if not boundary:
        raise InvalidInput("multipart/related Content-Type lacks a boundary")
    return boundary


def _sop_item(base: str, stored: StoredInstance) -> dict[str, Any]:
    return {
        "00081150": {"vr": "UI", "Value": [stored.sop_class_uid]},
        "00081155": {"vr": "UI", "Value": [stored.sop_instance_uid]},
        "00081190": {
            "vr": "UR",
            "Value": [
                instance_url(base, stored.study_uid, stored.series_uid, stored.sop_instance_uid)
            ],
        },
    }


def _failed_item(error: WsiArchiveError) -> dict[str, Any]:
    sop_class, sop_uid = error.sop or ("", "")
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [sop_class]} if sop_class else {"vr": "UI"},
        "00081155": {"vr": "UI", "Value": [sop_uid]} if sop_uid else {"vr": "UI"},
        "00081197": {"vr": "US", "Value": [failure_status(error)]},
    }
    # PS3.18 has no attribute for a reason text; TextValue (0040,A160) carries it so that a
    # person reading the response learns why, beside the coded FailureReason.
    item["0040A160"] = {"vr": "UT", "Value": [error.reason]}
    return item


_IN_FLIGHT = 8
# Staging files made ahead for the next parts (see _Spares); more did not measure faster.
_SPARES = 2
# Prepared parts are committed (renamed, flushed, indexed) in groups, so that they share the
# folder flushes and one index transaction: a group is started once this many are ready and
# no other group of the request is being committed, and the rest at the end.
_GROUP_MIN = 16
_GROUP_MAX = 64

_Prepared = PreparedInstance | dict[str, Any]
_Outcome = StoredInstance | dict[str, Any]


def _done(value: dict[str, Any]) -> asyncio.Task[_Prepared]:
    async def immediate() -> _Prepared:
        return value

    return asyncio.create_task(immediate())


class _Spares:
    """Staging files made ahead, in the worker-thread hop that finishes a part, so that most
    parts start without a hop of their own (a hop costs the event loop more than the file).

    Memory bound: at most ``_SPARES`` empty files, discarded when the request ends.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._files: list[StagedFile] = []
        self._promised = 0

    def promise(self) -> bool:
        """Whether the next hop should make a spare (it then must ``deliver``)."""
        if len(self._files) + self._promised >= _SPARES:
            return False
        self._promised += 1
        return True

    def deliver(self, spare: StagedFile | None, promised: bool) -> None:
        """Take back what a hop made (None if it made nothing or failed)."""
        self._promised -= promised
        if spare is not None:
            self._files.append(spare)

    async def take(self) -> StagedFile:
        """A fresh staging file: a spare, else one made in a worker thread now."""
        if self._files:
            return self._files.pop()
        return await self._services.blocking.run(self._services.archive.stage)

    async def close(self) -> None:
        """Discard the spares left over."""
        files, self._files = self._files, []
        if files:
            await self._services.blocking.run(_discard_all, files)


def _discard_all(files: list[StagedFile]) -> None:
    for staged in files:
        staged.discard()


def _finish_and_prepare(
    services: Services, writer: _PartWriter, study: str | None,
    tail: list[bytes | memoryview], make_spare: bool,
) -> tuple[StagedFile | None, PreparedInstance | WsiArchiveError]:
    result: PreparedInstance | WsiArchiveError
    try:
        try:
            writer.staged.write_all(tail)
            writer.staged.finish()
        except BaseException:
            writer.staged.discard()
            raise
        result = services.archive.prepare(writer.staged, Expected(study_uid=study))
    except WsiArchiveError as exc:
        result = exc
    return (_new_spare(services) if make_spare else None), result


def _new_spare(services: Services) -> StagedFile | None:
    try:
        return services.archive.stage()
    except (OSError, WsiArchiveError):
        return None  # the next part stages its own file and meets the problem itself


async def _prepare(services: Services, writer: _PartWriter, study: str | None,
                   in_flight: asyncio.Semaphore, spares: _Spares) -> _Prepared:
    """One part's last bytes, fsync, parse and validation in one worker-thread hop."""
    promised = spares.promise()
    spare: StagedFile | None = None
    try:
        spare, result = await services.blocking.run(
            _finish_and_prepare, services, writer, study, writer.take_buffer(), promised
        )
    finally:
        spares.deliver(spare, promised)
        in_flight.release()
    if isinstance(result, WsiArchiveError):
        log.info("STOW-RS part rejected: %s", result.reason)
        return _failed_item(result)
    return result


class _Committer:
    """Commits a request's parts in groups while later parts are still being received.

    ``add`` each part's preparation task in the order of the parts; ``finish`` waits for
    the rest and returns the outcomes in that order. One group at a time per request.
    Memory bound: the index rows (a few KB each) of prepared parts not yet committed.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tasks: list[asyncio.Task[_Prepared]] = []
        self._waiting: list[int] = []  # parts not yet handed to a group
        self._outcomes: dict[int, _Outcome] = {}
        self._running: asyncio.Task[None] | None = None

    def add(self, task: asyncio.Task[_Prepared]) -> None:
        """Track a part's preparation; may start committing a group of ready parts."""
        self._waiting.append(len(self._tasks))
        self._tasks.append(task)
        self._start_group(_GROUP_MIN)

    async def finish(self) -> list[_Outcome]:
        """Commit whatever is left, once every part is prepared; outcomes in part order."""
        try:
            await asyncio.gather(*self._tasks)
            while True:
                if self._running is not None:
                    await self._running
                    self._running = None
                self._start_group(1)
                if self._running is None:
                    break
        finally:
            for index in self._waiting:  # parts never committed (the request failed)
                task = self._tasks[index]
                if task.done() and not task.cancelled() and task.exception() is None:
                    result = task.result()
                    if isinstance(result, PreparedInstance):
                        result.staged.discard()
        return [self._outcomes[i] for i in range(len(self._tasks))]

    def _start_group(self, minimum: int) -> None:
        if self._running is not None and not self._running.done():
            return
        group: list[tuple[int, PreparedInstance]] = []
        waiting: list[int] = []
        for index in self._waiting:
            task = self._tasks[index]
            if not task.done() or task.cancelled() or task.exception() is not None:
                waiting.append(index)  # an exception is raised by finish()
                continue
            result = task.result()
            if isinstance(result, dict):
                self._outcomes[index] = result
            elif len(group) < _GROUP_MAX:
                group.append((index, result))
            else:
                waiting.append(index)
        if len(group) < minimum:
            waiting += [i for i, _ in group]
            waiting.sort()
            group = []
        self._waiting = waiting
        if group:
            previous = self._running
            self._running = asyncio.create_task(self._commit(group, previous))

    async def _commit(
        self, group: list[tuple[int, PreparedInstance]], previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await previous  # surfaces a failure of the group before
        done = await self._services.blocking.run(
            self._services.archive.commit, [p for _, p in group]
        )
        for (index, _), outcome in zip(group, done, strict=True):
            if isinstance(outcome, WsiArchiveError):
                log.info("STOW-RS part rejected: %s", outcome.reason)
                self._outcomes[index] = _failed_item(outcome)
            else:
                self._outcomes[index] = outcome


@post(
    ["/studies", "/studies/{study:str}"],
    request_max_body_size=None,
    status_code=200,
    summary="STOW-RS: store instances",
)
async def store_instances(
    request: Request, services: Services, study: str | None = None
) -> Response[dict[str, Any]]:
    """Store DICOM Part 10 instances sent as multipart/related; type="application/dicom"."""
    (study,) = path_uids(study)
    boundary = _check_request_type(request)
    base = dicomweb_base(request)
    committer = _Committer(services)
    # Parts are parsed while the next ones are received (fsync and parsing overlap with the
    # network); at most _IN_FLIGHT at once, so a fast client is slowed, not buffered.
    in_flight = asyncio.Semaphore(_IN_FLIGHT)
    spares = _Spares(services)
    writer: _PartWriter | None = None
    try:
        async for event in iter_parts(request.stream(), boundary):
            if isinstance(event, PartStart):
                writer = None
                part_type = event.headers.get("content-type", "application/dicom")
                if parse_content_type(part_type)[0] != "application/dicom":
                    committer.add(_done(_failed_item(InvalidInput(f"part is {part_type}"))))
                    continue
                writer = _PartWriter(services, await spares.take())
            elif isinstance(event, PartData) and writer is not None:
                await writer.add(event.data)
            elif isinstance(event, PartEnd) and writer is not None:
                current, writer = writer, None
                await in_flight.acquire()
                committer.add(
                    asyncio.create_task(_prepare(services, current, study, in_flight, spares))
                )
    finally:
        if writer is not None:
            await services.blocking.run(writer.staged.discard)
        # Complete parts are stored even when the body breaks off later (each is whole), and
        # the answer goes out only once they are durable.
        try:
            results = await committer.finish()
        finally:
            await spares.close()
    stored = [r for r in results if isinstance(r, StoredInstance)]
    failed = [r for r in results if not isinstance(r, StoredInstance)]
    if not stored and not failed:
        raise InvalidInput("the request contained no DICOM parts")
    body: dict[str, Any] = {}
    if study or stored:
        body["00081190"] = {
            "vr": "UR", "Value": [study_url(base, study or stored[0].study_uid)]
        }
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_sop_item(base, s) for s in stored]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if stored else 409
    return Response(body, status_code=status, media_type=DICOM_JSON)
