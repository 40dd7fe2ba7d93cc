"""The source's vendor properties, kept in a private block (PS3.5 §7.8).

Private Creator "WSI ARCHIVE DICOMIZER" reserves (0009,10xx); element xx=01 (UT) holds the
properties as a JSON object, xx=02 (LO) the vendor name. Private attributes are allowed in
any IOD, so the instance stays conformant and no standard attribute is misused.
"""

from __future__ import annotations

import json

from pydicom.dataset import Dataset

from dicomizer.iod.context import SlideContext

PRIVATE_GROUP = 0x0009
PRIVATE_CREATOR = "WSI ARCHIVE DICOMIZER"


def vendor_properties(ds: Dataset, context: SlideContext) -> None:
    """Add the private block when the source has vendor properties."""
    properties = dict(context.properties.vendor_properties)
    if not properties:
        return
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "UT", json.dumps(properties, ensure_ascii=False, sort_keys=True))
    block.add_new(0x02, "LO", context.properties.vendor[:64])
