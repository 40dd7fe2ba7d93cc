"""Presentation contexts (PS3.8 §7.1.1.13): what the archive accepts and what it proposes."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom import uid
from pynetdicom import AE, AllStoragePresentationContexts, build_context
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

MAX_CONTEXTS = 128
"""At most 128 presentation contexts per association (odd IDs 1..255, PS3.8 §9.3.2.2)."""

UNCOMPRESSED = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
)
_LITTLE_ENDIAN = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian)
STORAGE_TRANSFER_SYNTAXES: tuple[str, ...] = (
    *UNCOMPRESSED,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.HTJ2KLossless,
    uid.HTJ2KLosslessRPCL,
    uid.HTJ2K,
    uid.RLELossless,
)
"""Accepted for storage; the bytes are stored as they arrive, never transcoded."""

FIND_MODELS = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
MOVE_MODELS = (
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
)
GET_MODELS = (
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)
PATIENT_ROOT = frozenset(
    str(m) for m in (FIND_MODELS[0], MOVE_MODELS[0], GET_MODELS[0])
)
"""The Patient Root models; the others here are Study Root (no PATIENT level)."""

STORAGE_SOP_CLASSES = frozenset(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)


def add_supported_contexts(ae: AE) -> None:
    """Make ``ae`` accept verification, all storage SOP classes and Q/R find, move, get."""
    ae.add_supported_context(Verification, list(UNCOMPRESSED[:2]))
    for sop_class in sorted(STORAGE_SOP_CLASSES):
        # Accepting the requestor's proposed SCP role is what lets C-GET send the
        # instances back on the same association (PS3.4 C.4.3, PS3.7 D.3.3.4).
        ae.add_supported_context(
            sop_class, list(STORAGE_TRANSFER_SYNTAXES), scu_role=True, scp_role=True
        )
    for model in (*FIND_MODELS, *MOVE_MODELS, *GET_MODELS):
        ae.add_supported_context(model, list(UNCOMPRESSED[:3]))


def verification_context() -> PresentationContext:
    """A Verification context, for associations that need one context and send nothing."""
    return build_context(Verification, list(UNCOMPRESSED[:2]))


def storage_contexts(
    pairs: Iterable[tuple[str, str]], little_endian_fallback: bool = False
) -> list[list[PresentationContext]]:
    """Contexts proposing each (SOP class, transfer syntax), in groups of at most 128.

    Each stored file is sent in its own transfer syntax, so every pair gets a context of its
    own: a context offering several syntaxes could be accepted with one the file is not in.
    With ``little_endian_fallback`` an Explicit or Implicit VR Little Endian file's context
    also offers the other one, for senders that re-encode a decoded data set (pynetdicom
    converts between the two when the peer accepts only the other).
    """
    contexts = []
    for sop_class, tsuid in sorted(set(pairs)):
        syntaxes = [tsuid]
        if little_endian_fallback and tsuid in _LITTLE_ENDIAN:
            syntaxes += [ts for ts in _LITTLE_ENDIAN if ts != tsuid]
        contexts.append(build_context(sop_class, syntaxes))
    return [contexts[i : i + MAX_CONTEXTS] for i in range(0, len(contexts), MAX_CONTEXTS)]
