"""DIMSE end to end: DCMTK tools and pynetdicom against the real ``wsi serve`` on loopback.

One dedicated server for the module knows a DCMTK ``storescp`` as move destination; its
temporary files (incoming C-STOREs) live in ``data/tmp``, where they can be watched.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config, build_context
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.conftest import REPO, Server, start_server, stop_server
from tests.e2e.conftest import DEST_AE, StoreScp, wait_for_echo
from tests.support import fresh_copy, multipart, parse_multipart, to_bytes

pytestmark = pytest.mark.skipif(
    shutil.which("storescu") is None or shutil.which("storescp") is None,
    reason="DCMTK is not installed (make system-deps)",
)

ARCHIVE_AE = "WSIARCHIVE"
DICOM = 'multipart/related; type="application/dicom"'


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dimse(tmp_path_factory: pytest.TempPathFactory, storescp: StoreScp) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dimse")
    server = start_server(root / "data", env={
        "WSI_MODALITIES": f"{DEST_AE}@127.0.0.1:{storescp.port}",
    })
    try:
        wait_for_echo(server.dicom_port, ARCHIVE_AE)
        yield server
    finally:
        stop_server(server)


@dataclass(frozen=True)
class Patient:
    """One patient with two studies stored by STOW-RS: A (2020, CT + MR) and B (2021, CT)."""

    patient_id: str
    name: str
    study_a: str
    study_b: str
    ct_a: Dataset
    mr_a: Dataset
    ct_b: Dataset


@pytest.fixture(scope="module")
def patient(dimse: Server) -> Patient:
    tag = generate_uid()[-8:]
    pid, name = f"PID-{tag}", f"Dimse^Alpha{tag}"
    study_a, study_b = generate_uid(), generate_uid()
    common = {"PatientName": name, "IssuerOfPatientID": ""}
    ct_a = fresh_copy("CT_small.dcm", study_a, pid, StudyDate="20200115", **common)
    mr_a = fresh_copy("MR_small.dcm", study_a, pid, StudyDate="20200115", **common)
    ct_b = fresh_copy("CT_small.dcm", study_b, pid, StudyDate="20210601", **common)
    body, content_type = multipart([to_bytes(ds) for ds in (ct_a, mr_a, ct_b)])
    response = httpx.post(f"{dimse.dicomweb}/studies", content=body,
                          headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == 200, response.text
    return Patient(pid, name, study_a, study_b, ct_a, mr_a, ct_b)


# ---- helpers ----------------------------------------------------------------------------------
def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def _dataset_part(part10: bytes) -> bytes:
    """The bytes after the File Meta Information group (PS3.10 §7.1)."""
    assert part10[128:132] == b"DICM"
    assert part10[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) group length, explicit VR UL
    (length,) = struct.unpack("<I", part10[140:144])
    return part10[144 + length :]


def _write(folder: Path, *datasets: Dataset) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths


def _qido(server: Server, path: str, **params: str) -> list[dict]:
    response = httpx.get(f"{server.dicomweb}{path}", params=params, timeout=30)
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 and response.content else []


def _wado(server: Server, ds: Dataset) -> bytes:
    url = (f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    response = httpx.get(url, headers={"Accept": DICOM}, timeout=30)
    assert response.status_code == 200, response.text
    [(_, body)] = parse_multipart(response.headers["content-type"], response.content)
    return body


def _findscu(server: Server, folder: Path, model: str, *keys: str) -> list[Dataset]:
    folder.mkdir(parents=True)
    command = ["findscu", model, "-aec", ARCHIVE_AE, "-X", "-od", str(folder)]
    for key in keys:
        command += ["-k", key]
    _run(*command, "127.0.0.1", str(server.dicom_port))
    return [pydicom.dcmread(p) for p in sorted(folder.glob("rsp*.dcm"))]


def _values(responses: list[Dataset], keyword: str) -> set[str]:
    return {str(r.get(keyword, "")) for r in responses}


def _staging_is_empty(server: Server) -> bool:
    return not any((server.data_dir / "staging").iterdir())


def _partial_temp_files(server: Server) -> list[Path]:
    return list((server.data_dir / "tmp").glob("*"))


def _association(
    server: Server, *contexts: PresentationContext, calling: str = "PYTEST"
) -> Association:
    ae = AE(ae_title=calling)
    assoc = ae.associate("127.0.0.1", server.dicom_port, contexts=list(contexts),
                         ae_title=ARCHIVE_AE)
    assert assoc.is_established
    return assoc


# ---- C-ECHO and C-STORE -------------------------------------------------------------------------
def test_echoscu_is_answered_and_the_caller_logged(dimse: Server) -> None:
    _run("echoscu", "-aet", "ECHOTEST", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port))

    time.sleep(0.2)
    assert "calling AE ECHOTEST from 127.0.0.1" in dimse.log()


# storescu sends a compressed file only in a context proposing its own transfer syntax.
_PROPOSE = {
    "SC_rgb_jpeg_dcmtk.dcm": "-xy",
    "JPEG2000.dcm": "-xw",
    "SC_rgb_rle_2frame.dcm": "-xr",
    "MR_small_jpeg_ls_lossless.dcm": "-xt",
    "image_dfl.dcm": "-xd",
}
_UNCOMPRESSED = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb_small_odd.dcm",
                 "test-SR.dcm", "MR_small_bigendian.dcm"]


def test_storescu_files_are_found_by_qido_and_retrieved_by_wado(
    dimse: Server, tmp_path: Path
) -> None:
    study = generate_uid()
    originals = {name: fresh_copy(name, study) for name in [*_UNCOMPRESSED, *_PROPOSE]}
    paths = dict(zip(originals, _write(tmp_path, *originals.values()), strict=True))

    _run("storescu", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port),
         *(str(paths[n]) for n in _UNCOMPRESSED))
    for name, flag in _PROPOSE.items():
        _run("storescu", "-R", flag, "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port),
             str(paths[name]))

    found = {f["00080018"]["Value"][0]: f for f in _qido(dimse, f"/studies/{study}/instances")}
    assert set(found) == {str(ds.SOPInstanceUID) for ds in originals.values()}
    for name in _PROPOSE:
        original = originals[name]
        stored = pydicom.dcmread(io.BytesIO(_wado(dimse, original)))
        tsuid = original.file_meta.TransferSyntaxUID
        assert found[original.SOPInstanceUID]["00083002"]["Value"] == [tsuid], name
        assert stored.file_meta.TransferSyntaxUID == tsuid, name
        assert stored.PixelData == original.PixelData, name
    ct = originals["CT_small.dcm"]
    del ct[0xFFFCFFFC]  # storescu drops the trailing padding; everything else arrives
    assert pydicom.dcmread(io.BytesIO(_wado(dimse, ct))) == ct
    assert _staging_is_empty(dimse) and not _partial_temp_files(dimse)


def test_c_store_is_parsed_in_the_dimse_process(dimse: Server, tmp_path: Path) -> None:
    # The DIMSE process has no event loop to keep free, so it parses C-STOREd data sets
    # itself instead of paying a parser process's round trip for each one.
    (path,) = _write(tmp_path, fresh_copy("CT_small.dcm", generate_uid()))

    _run("storescu", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port), str(path))

    children = [" ".join(child.cmdline())
                for child in psutil.Process(dimse.process.pid).children()]
    assert children and not [c for c in children if "multiprocessing.spawn" in c], children


def test_storescu_multiframe_wsi_instance_serves_its_frames(
    dimse: Server, tmp_path: Path
) -> None:
    wsi_level = pytest.importorskip("samples.wsi_level")
    path = wsi_level.write_wsi_level(tmp_path / "level.dcm", width=1000, height=700, tile=256)
    original = pydicom.dcmread(path)
    frames = list(pydicom.encaps.generate_frames(original.PixelData,
                                                 number_of_frames=original.NumberOfFrames))

    _run("storescu", "-R", "-xy", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port),
         str(path))

    [found] = _qido(dimse, f"/studies/{original.StudyInstanceUID}/instances")
    assert found["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.77.1.6"]
    assert found["00280008"]["Value"] == [len(frames)] == [12]
    url = (f"{dimse.dicomweb}/studies/{original.StudyInstanceUID}/series/"
           f"{original.SeriesInstanceUID}/instances/{original.SOPInstanceUID}/frames/1,12")
    response = httpx.get(url, timeout=30, headers={
        "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
    assert response.status_code == 200
    parts = parse_multipart(response.headers["content-type"], response.content)
    assert [body.rstrip(b"\0") for _, body in parts] == [
        frames[0].rstrip(b"\0"), frames[11].rstrip(b"\0")]


# ---- C-FIND -----------------------------------------------------------------------------------
def test_findscu_patient_root_at_all_four_levels(
    dimse: Server, patient: Patient, tmp_path: Path
) -> None:
    wildcard = patient.name[:-3] + "*"

    patients = _findscu(dimse, tmp_path / "p", "-P", "QueryRetrieveLevel=PATIENT",
                        f"PatientName={wildcard}", "PatientID",
                        "NumberOfPatientRelatedStudies", "PatientComments")
    studies = _findscu(dimse, tmp_path / "st", "-P", "QueryRetrieveLevel=STUDY",
                       f"PatientID={patient.patient_id}", "StudyDate=20200101-20201231",
                       "StudyInstanceUID", "ModalitiesInStudy")
    series = _findscu(dimse, tmp_path / "se", "-P", "QueryRetrieveLevel=SERIES",
                      f"PatientID={patient.patient_id}", f"StudyInstanceUID={patient.study_a}",
                      "SeriesInstanceUID", "Modality=MR")
    images = _findscu(dimse, tmp_path / "im", "-P", "QueryRetrieveLevel=IMAGE",
                      f"StudyInstanceUID={patient.study_a}",
                      f"SeriesInstanceUID={patient.ct_a.SeriesInstanceUID}",
                      "SOPInstanceUID", "SOPClassUID")

    [p] = patients
    assert (p.PatientID, p.NumberOfPatientRelatedStudies) == (patient.patient_id, 2)
    # Exactly the requested keys, unknown ones empty, plus the level.
    assert [e.keyword for e in p] == ["QueryRetrieveLevel", "PatientName", "PatientID",
                                      "PatientComments", "NumberOfPatientRelatedStudies"]
    assert p.PatientComments == "" and p.QueryRetrieveLevel == "PATIENT"
    assert _values(studies, "StudyInstanceUID") == {patient.study_a}
    assert list(studies[0].ModalitiesInStudy) == ["CT", "MR"]
    assert _values(series, "SeriesInstanceUID") == {patient.mr_a.SeriesInstanceUID}
    assert [(i.SOPInstanceUID, i.SOPClassUID, i.QueryRetrieveLevel) for i in images] == [
        (patient.ct_a.SOPInstanceUID, patient.ct_a.SOPClassUID, "IMAGE")]


def test_findscu_study_root_levels_and_uid_lists(
    dimse: Server, patient: Patient, tmp_path: Path
) -> None:
    studies = _findscu(dimse, tmp_path / "st", "-S", "QueryRetrieveLevel=STUDY",
                       f"StudyInstanceUID={patient.study_a}\\{patient.study_b}",
                       "StudyDate", "PatientName", "NumberOfStudyRelatedInstances",
                       "RetrieveAETitle")
    series = _findscu(dimse, tmp_path / "se", "-S", "QueryRetrieveLevel=SERIES",
                      f"StudyInstanceUID={patient.study_a}", "SeriesInstanceUID", "Modality")
    images = _findscu(dimse, tmp_path / "im", "-S", "QueryRetrieveLevel=IMAGE",
                      f"StudyInstanceUID={patient.study_b}", "SOPInstanceUID",
                      "SeriesDate", "Rows")
    no_patient_level = _run("findscu", "-v", "-S", "-aec", ARCHIVE_AE, "-k",
                            "QueryRetrieveLevel=PATIENT", "-k", "PatientID", "127.0.0.1",
                            str(dimse.dicom_port), check=False)

    by_study = {s.StudyInstanceUID: s for s in studies}
    assert set(by_study) == {patient.study_a, patient.study_b}
    assert by_study[patient.study_a].StudyDate == "20200115"
    assert by_study[patient.study_b].NumberOfStudyRelatedInstances == 1
    assert str(by_study[patient.study_b].PatientName) == patient.name
    assert by_study[patient.study_b].RetrieveAETitle == ARCHIVE_AE
    assert _values(series, "Modality") == {"CT", "MR"}
    [image] = images
    assert image.SOPInstanceUID == patient.ct_b.SOPInstanceUID and image.Rows == 128
    assert image.SeriesDate == patient.ct_b.SeriesDate  # a key of the level above
    assert "Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in no_patient_level.stderr


# ---- C-MOVE and C-GET -------------------------------------------------------------------------
def test_movescu_sends_stored_bytes_to_a_known_destination(
    dimse: Server, patient: Patient, storescp: StoreScp
) -> None:
    wanted = {ds.SOPInstanceUID: _dataset_part(_wado(dimse, ds))
              for ds in (patient.ct_a, patient.mr_a)}

    result = _run("movescu", "-v", "-S", "-aec", ARCHIVE_AE, "-aem", DEST_AE,
                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={patient.study_a}",
                  "127.0.0.1", str(dimse.dicom_port))

    received = storescp.received()
    for sop_uid, dataset_bytes in wanted.items():
        assert _dataset_part(received[sop_uid]) == dataset_bytes
    assert "Final Move Response (Success)" in result.stderr


def test_getscu_retrieves_a_series_on_the_same_association(
    dimse: Server, patient: Patient, tmp_path: Path
) -> None:
    _run("getscu", "-S", "+B", "-aec", ARCHIVE_AE, "-od", str(tmp_path),
         "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={patient.study_b}",
         "-k", f"SeriesInstanceUID={patient.ct_b.SeriesInstanceUID}",
         "127.0.0.1", str(dimse.dicom_port))

    [path] = list(tmp_path.iterdir())
    assert _dataset_part(path.read_bytes()) == _dataset_part(_wado(dimse, patient.ct_b))


def test_dimse_store_then_qido_and_move_of_a_single_image(
    dimse: Server, storescp: StoreScp, tmp_path: Path
) -> None:
    ds = fresh_copy("SC_rgb_small_odd.dcm")
    [path] = _write(tmp_path, ds)
    _run("storescu", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port), str(path))
    assert _qido(dimse, "/instances", SOPInstanceUID=ds.SOPInstanceUID)

    _run("movescu", "-P", "-aec", ARCHIVE_AE, "-aem", DEST_AE,
         "-k", "QueryRetrieveLevel=IMAGE", "-k", f"PatientID={ds.PatientID}",
         "-k", f"StudyInstanceUID={ds.StudyInstanceUID}",
         "-k", f"SeriesInstanceUID={ds.SeriesInstanceUID}",
         "-k", f"SOPInstanceUID={ds.SOPInstanceUID}", "127.0.0.1", str(dimse.dicom_port))

    assert pydicom.dcmread(io.BytesIO(storescp.received()[ds.SOPInstanceUID])) == ds


def test_move_to_an_unknown_destination_is_a801(dimse: Server, patient: Patient) -> None:
    assoc = _association(dimse, build_context(StudyRootQueryRetrieveInformationModelMove))
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = patient.study_a

    responses = list(assoc.send_c_move(identifier, "NOWHERE",
                                       StudyRootQueryRetrieveInformationModelMove))
    assoc.release()

    assert [status.Status for status, _ in responses] == [0xA801]


# ---- bad input ----------------------------------------------------------------------------------
@pytest.fixture
def chunked_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let pynetdicom send a file's bytes as they are, unparsed."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


def _part10(sop_class: str, sop_uid: str, dataset_bytes: bytes) -> bytes:
    """A file whose meta claims ``sop_class``/``sop_uid``, whatever ``dataset_bytes`` hold."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue() + dataset_bytes


@pytest.mark.usefixtures("chunked_send")
def test_bad_data_sets_are_refused_with_their_status(dimse: Server, tmp_path: Path) -> None:
    ct, mr = fresh_copy("CT_small.dcm"), fresh_copy("MR_small.dcm")
    ct_bytes, mr_bytes = _dataset_part(to_bytes(ct)), _dataset_part(to_bytes(mr))
    other_uid = generate_uid()
    # pynetdicom takes the request's Affected SOP Class/Instance UID from the file meta.
    cases = {
        "garbage": (_part10(CTImageStorage, ct.SOPInstanceUID, b"\xff" * 4000), 0xC000),
        "truncated": (_part10(CTImageStorage, ct.SOPInstanceUID, ct_bytes[:-5000]), 0xC000),
        "other instance": (_part10(CTImageStorage, other_uid, ct_bytes), 0xA900),
        "other SOP class": (_part10(CTImageStorage, mr.SOPInstanceUID, mr_bytes), 0xA900),
    }
    assoc = _association(dimse, build_context(CTImageStorage, ExplicitVRLittleEndian))
    statuses = {}
    for name, (data, _) in cases.items():
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(data)
        statuses[name] = assoc.send_c_store(path).Status
    assoc.release()

    assert statuses == {name: status for name, (_, status) in cases.items()}
    uids = "\\".join([ct.SOPInstanceUID, mr.SOPInstanceUID, other_uid])
    assert not _qido(dimse, "/instances", SOPInstanceUID=uids)
    assert _staging_is_empty(dimse) and not _partial_temp_files(dimse)
    _run("echoscu", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port))


def test_unsupported_sop_class_and_transfer_syntax_are_not_accepted(dimse: Server) -> None:
    unknown_class = build_context("1.2.3.4.5.6.7", ExplicitVRLittleEndian)
    mpeg2 = build_context(CTImageStorage, "1.2.840.10008.1.2.4.100")
    assoc = _association(dimse, build_context(Verification), unknown_class, mpeg2)

    accepted = [cx.abstract_syntax for cx in assoc.accepted_contexts]
    assoc.release()

    assert accepted == [Verification]


def test_abort_during_transfer_leaves_nothing_and_the_server_serves_on(dimse: Server) -> None:
    ds = fresh_copy("CT_small.dcm")
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(512 * 512 * 2)
    assoc = _association(dimse, build_context(CTImageStorage, ExplicitVRLittleEndian))
    request = C_STORE()
    request.MessageID, request.Priority = 1, 2
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.DataSet = io.BytesIO(_dataset_part(to_bytes(ds)))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = assoc.accepted_contexts[0].context_id
    pdus = list(message.encode_msg(context_id, 16382))

    for pdu in pdus[: len(pdus) // 2]:
        assoc.dul.send_pdu(pdu)
    _wait_until(lambda: bool(_partial_temp_files(dimse)))
    assoc.abort()

    _wait_until(lambda: not _partial_temp_files(dimse))
    assert "partial data set dropped" in dimse.log()
    assert not _qido(dimse, "/instances", SOPInstanceUID=ds.SOPInstanceUID)
    assert _staging_is_empty(dimse)
    _run("echoscu", "-aec", ARCHIVE_AE, "127.0.0.1", str(dimse.dicom_port))


def _wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# ---- SCU side ---------------------------------------------------------------------------------
def test_scu_functions_against_the_archive_and_storescp(
    dimse: Server, patient: Patient, storescp: StoreScp, tmp_path: Path
) -> None:
    from archive.dimse import scu
    from wsi.settings import RemoteModality

    archive = RemoteModality(ARCHIVE_AE, "127.0.0.1", dimse.dicom_port)
    destination = RemoteModality(DEST_AE, "127.0.0.1", storescp.port)
    ds = fresh_copy("MR_small.dcm")
    paths = _write(tmp_path, ds)

    assert scu.echo(archive) == 0
    matches = scu.query(archive, "STUDY", {"PatientName": patient.name[:-2] + "*",
                                           "StudyDate": "20210101-"}, ["StudyDate"])
    sent = scu.send(destination, paths)
    moved = scu.retrieve_move(archive, "SERIES", [patient.mr_a.SeriesInstanceUID], DEST_AE,
                              parents={"StudyInstanceUID": patient.study_a})

    assert [m["0020000D"]["Value"] for m in matches] == [[patient.study_b]]
    assert (sent.completed, sent.failed) == (1, 0)
    assert _dataset_part(storescp.received()[ds.SOPInstanceUID]) == _dataset_part(
        paths[0].read_bytes())
    assert (moved.completed, moved.failed) == (1, 0)


def test_wsi_cli_echo_query_send_and_retrieve(
    dimse: Server, patient: Patient, storescp: StoreScp
) -> None:
    peer = f"{ARCHIVE_AE}@127.0.0.1:{dimse.dicom_port}"
    destination = f"{DEST_AE}@127.0.0.1:{storescp.port}"
    commands = {
        "echo": ["echo", peer],
        "query": ["query", peer, "--level", "SERIES", "-k",
                  f"StudyInstanceUID={patient.study_a}", "-k", "Modality=CT"],
        "send": ["send", "--to", destination, patient.study_b,
                 "--data-dir", str(dimse.data_dir)],
        "retrieve": ["retrieve", peer, patient.study_a, "--dest", DEST_AE],
    }

    running = {name: subprocess.Popen([sys.executable, "-m", "wsi", *arguments], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, arguments in commands.items()}
    outputs = {name: p.communicate(timeout=60) for name, p in running.items()}
    results = {name: (running[name].returncode, *out) for name, out in outputs.items()}

    for name, (code, _, stderr) in results.items():
        assert code == 0, f"{name}: {stderr}"
    assert "0x0000" in results["echo"][1]
    assert patient.ct_a.SeriesInstanceUID in results["query"][1]
    assert patient.mr_a.SeriesInstanceUID not in results["query"][1]
    assert "sent 1, warnings 0, failed 0" in results["send"][1]
    assert "retrieved 2, warnings 0, failed 0" in results["retrieve"][1]
    assert patient.ct_b.SOPInstanceUID in storescp.received()


def test_calling_ae_allow_list_and_no_dimse(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        starting = [
            pool.submit(start_server, tmp_path / "guarded",
                        env={"WSI_DIMSE_ALLOWED_CALLERS": "FRIEND"}),
            pool.submit(start_server, tmp_path / "silent", "--no-dimse"),
        ]
    guarded, silent = (future.result() for future in starting)
    try:
        _wait_for_echo_as(guarded.dicom_port, "FRIEND")
        stranger = _run("echoscu", "-aet", "STRANGER", "127.0.0.1", str(guarded.dicom_port),
                        check=False)
        nothing = _run("echoscu", "127.0.0.1", str(silent.dicom_port), check=False)
    finally:
        stop_server(guarded)
        stop_server(silent)

    assert stranger.returncode != 0
    assert "rejected: calling AE STRANGER" in guarded.log()
    assert nothing.returncode != 0


def _wait_for_echo_as(port: int, calling: str) -> None:
    deadline = time.monotonic() + 15
    while _run("echoscu", "-aet", calling, "127.0.0.1", str(port), check=False).returncode:
        assert time.monotonic() < deadline
        time.sleep(0.1)
