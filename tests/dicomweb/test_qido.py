"""QIDO-RS at every level with every matching rule, through dicomweb-client and httpx."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.uid import generate_uid

from tests.conftest import Server
from tests.support import fresh_copy, multipart, to_bytes


@dataclass(frozen=True)
class Corpus:
    """Three patients' studies stored once for the query tests of this module."""

    tag: str
    studies: dict[str, str]  # name -> StudyInstanceUID
    series: dict[str, str]


def _uids(items: list[dict], tag: str = "0020000D") -> set[str]:
    return {item[tag]["Value"][0] for item in items}


@pytest.fixture(scope="module")
def corpus(server: Server) -> Corpus:
    tag = uuid.uuid4().hex[:8].upper()
    specs = {
        "anna": dict(PatientName=f"Q{tag}^Anna", PatientID=f"{tag}-1", StudyDate="20200105",
                     StudyTime="101500", AccessionNumber=f"A{tag}1", StudyDescription="Chest"),
        "anne": dict(PatientName=f"Q{tag}^Anne", PatientID=f"{tag}-2", StudyDate="20210610",
                     StudyTime="235959", AccessionNumber=f"A{tag}2", StudyDescription=""),
        "bob": dict(PatientName=f"R{tag}^Bob", PatientID=f"{tag}-3", StudyDate="20221231",
                    StudyTime="080000", AccessionNumber="", StudyDescription="Brain"),
    }
    studies, series, parts = {}, {}, []
    for name, attributes in specs.items():
        study = generate_uid()
        studies[name] = study
        source = "CT_small.dcm" if name != "bob" else "MR_small.dcm"
        first = fresh_copy(source, study_uid=study, **attributes)
        series[name] = first.SeriesInstanceUID
        second = fresh_copy(source, study_uid=study, **attributes)
        second.SeriesInstanceUID = first.SeriesInstanceUID
        second.InstanceNumber = 2
        parts += [to_bytes(first), to_bytes(second)]
    body, content_type = multipart(parts)
    response = httpx.post(f"{server.dicomweb}/studies", content=body,
                          headers={"Content-Type": content_type}, timeout=60)
    assert response.status_code == 200, response.text
    return Corpus(tag, studies, series)


def _studies(http: httpx.Client, **params: str) -> list[dict]:
    response = http.get("/studies", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    return response.json()


def test_single_value_and_case_insensitive_person_name(http: httpx.Client, corpus: Corpus
                                                       ) -> None:
    exact = _studies(http, PatientName=f"Q{corpus.tag}^Anna")
    lower = _studies(http, PatientName=f"q{corpus.tag.lower()}^anna")

    assert _uids(exact) == {corpus.studies["anna"]}
    assert _uids(lower) == {corpus.studies["anna"]}


def test_wildcards(http: httpx.Client, corpus: Corpus) -> None:
    star = _studies(http, PatientName=f"Q{corpus.tag}^*")
    question = _studies(http, PatientName=f"Q{corpus.tag}^Ann?")
    tag_keyword = _studies(http, **{"00100010": f"*{corpus.tag}^Bo*"})

    assert _uids(star) == {corpus.studies["anna"], corpus.studies["anne"]}
    assert _uids(question) == {corpus.studies["anna"], corpus.studies["anne"]}
    assert _uids(tag_keyword) == {corpus.studies["bob"]}


def test_date_and_time_ranges(http: httpx.Client, corpus: Corpus) -> None:
    pid = f"{corpus.tag}-*"

    closed = _studies(http, PatientID=pid, StudyDate="20200101-20211231")
    open_low = _studies(http, PatientID=pid, StudyDate="20210101-")
    open_high = _studies(http, PatientID=pid, StudyDate="-20200105")
    times = _studies(http, PatientID=pid, StudyTime="100000-235959")

    assert _uids(closed) == {corpus.studies["anna"], corpus.studies["anne"]}
    assert _uids(open_low) == {corpus.studies["anne"], corpus.studies["bob"]}
    assert _uids(open_high) == {corpus.studies["anna"]}
    assert _uids(times) == {corpus.studies["anna"], corpus.studies["anne"]}


def test_uid_list_matching(http: httpx.Client, corpus: Corpus) -> None:
    wanted = [corpus.studies["anna"], corpus.studies["bob"]]

    comma = _studies(http, StudyInstanceUID=",".join(wanted))
    backslash = _studies(http, StudyInstanceUID="\\".join(wanted))

    assert _uids(comma) == set(wanted)
    assert _uids(backslash) == set(wanted)


def test_empty_value_and_universal_matching(http: httpx.Client, corpus: Corpus) -> None:
    pid = f"{corpus.tag}-*"

    empty = _studies(http, PatientID=pid, AccessionNumber='""')
    universal = _studies(http, PatientID=pid, AccessionNumber="")

    assert _uids(empty) == {corpus.studies["bob"]}
    assert len(universal) == 3


def test_computed_counts_and_modalities(http: httpx.Client, corpus: Corpus) -> None:
    (study,) = _studies(http, StudyInstanceUID=corpus.studies["anna"])
    (by_modality,) = _studies(http, PatientID=f"{corpus.tag}-*", ModalitiesInStudy="MR")

    assert study["00201206"]["Value"] == [1]  # NumberOfStudyRelatedSeries
    assert study["00201208"]["Value"] == [2]  # NumberOfStudyRelatedInstances
    assert study["00080061"]["Value"] == ["CT"]  # ModalitiesInStudy
    assert study["00081190"]["Value"][0].endswith(f"/dicom-web/studies/{corpus.studies['anna']}")
    assert by_modality["0020000D"]["Value"] == [corpus.studies["bob"]]


def test_series_and_instance_levels(http: httpx.Client, corpus: Corpus) -> None:
    study = corpus.studies["anna"]

    in_study = http.get(f"/studies/{study}/series").json()
    all_series = http.get("/series", params={"PatientID": f"{corpus.tag}-1"}).json()
    in_series = http.get(f"/studies/{study}/series/{corpus.series['anna']}/instances").json()
    in_study_instances = http.get(f"/studies/{study}/instances").json()
    all_instances = http.get("/instances", params={"PatientID": f"{corpus.tag}-*",
                                                   "Modality": "MR"}).json()

    assert _uids(in_study, "0020000E") == {corpus.series["anna"]}
    assert in_study[0]["00201209"]["Value"] == [2]  # NumberOfSeriesRelatedInstances
    assert _uids(all_series, "0020000E") == {corpus.series["anna"]}
    assert len(in_series) == 2 and len(in_study_instances) == 2
    assert all(i["00083002"]["Value"] for i in in_series)  # AvailableTransferSyntaxUID
    assert {i["00200013"]["Value"][0] for i in in_series} == {1, 2}
    assert len(all_instances) == 2
    assert _uids(all_instances, "0020000E") == {corpus.series["bob"]}


def test_includefield_limit_offset(http: httpx.Client, corpus: Corpus) -> None:
    pid = f"{corpus.tag}-*"

    default = _studies(http, PatientID=pid)
    included = _studies(http, PatientID=pid, includefield="00081030,InstitutionName")
    page1 = _studies(http, PatientID=pid, limit="2")
    page2 = _studies(http, PatientID=pid, limit="2", offset="2")
    everything = http.get("/instances", params={"PatientID": f"{corpus.tag}-1",
                                                "includefield": "all"}).json()

    assert "00080080" not in default[0]
    assert all("00080080" in study for study in included)
    assert len(page1) == 2 and len(page2) == 1
    assert _uids(page1) | _uids(page2) == set(corpus.studies.values())
    assert "00280010" in everything[0] and "00180050" in everything[0]  # Rows, SliceThickness


def test_fuzzymatching_accepted_and_unsupported_keys_warned(
    http: httpx.Client, corpus: Corpus
) -> None:
    fuzzy = http.get("/studies", params={"PatientName": f"Q{corpus.tag}^Anna",
                                         "fuzzymatching": "true"})
    sequence = http.get("/studies", params={"PatientName": f"Q{corpus.tag}^Anna",
                                            "ReferencedStudySequence.ReferencedSOPClassUID": "1"})

    assert fuzzy.status_code == 200 and len(fuzzy.json()) == 1
    assert sequence.status_code == 200
    assert "ReferencedStudySequence" in sequence.headers["warning"]


def test_bad_parameters_are_400(http: httpx.Client) -> None:
    assert http.get("/studies", params={"NoSuchKeyword": "x"}).status_code == 400
    assert http.get("/studies", params={"limit": "many"}).status_code == 400
    assert http.get("/studies", params={"offset": "-1"}).status_code == 400
    assert http.get("/studies", params={"includefield": "Nope"}).status_code == 400


def test_dicomweb_client_search(server: Server, corpus: Corpus) -> None:
    client = DICOMwebClient(server.dicomweb)

    studies = client.search_for_studies(search_filters={"PatientName": f"Q{corpus.tag}*"})
    series = client.search_for_series(corpus.studies["bob"])
    instances = client.search_for_instances(corpus.studies["bob"], corpus.series["bob"],
                                            fields=["PatientName"])

    assert _uids(studies) == {corpus.studies["anna"], corpus.studies["anne"]}
    assert len(series) == 1
    assert len(instances) == 2
    assert instances[0]["00100010"]["Value"][0]["Alphabetic"] == f"R{corpus.tag}^Bob"
