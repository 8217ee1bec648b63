"""English postcode areas grouped into the nine regions.

An area that straddles a boundary is put in the region that holds most of it. Used by the
generator (where learners live) and by profiles (share of learners outside the home region).
"""

from __future__ import annotations

from schemas.reference import Region

POSTCODE_AREAS: dict[Region, tuple[str, ...]] = {
    Region.north_east: ("NE", "SR", "DH", "DL", "TS"),
    Region.north_west: (
        "M",
        "L",
        "WA",
        "WN",
        "BL",
        "BB",
        "PR",
        "FY",
        "LA",
        "CA",
        "CH",
        "CW",
        "SK",
        "OL",
    ),
    Region.yorkshire: ("LS", "BD", "HX", "HD", "WF", "HG", "YO", "HU", "DN", "S"),
    Region.east_midlands: ("NG", "DE", "LE", "LN", "NN"),
    Region.west_midlands: ("B", "CV", "WV", "WS", "DY", "ST", "TF", "WR", "HR"),
    Region.east: ("CB", "CO", "CM", "IP", "NR", "PE", "SG", "AL", "LU", "SS", "EN", "WD"),
    Region.london: (
        "E",
        "EC",
        "N",
        "NW",
        "SE",
        "SW",
        "W",
        "WC",
        "BR",
        "CR",
        "HA",
        "IG",
        "RM",
        "SM",
        "TW",
        "UB",
    ),
    Region.south_east: (
        "BN",
        "CT",
        "GU",
        "KT",
        "ME",
        "MK",
        "OX",
        "PO",
        "RG",
        "RH",
        "SL",
        "SO",
        "TN",
        "DA",
        "HP",
    ),
    Region.south_west: ("BA", "BH", "BS", "DT", "EX", "GL", "PL", "SN", "SP", "TA", "TQ", "TR"),
}

AREA_REGION: dict[str, Region] = {
    area: region for region, areas in POSTCODE_AREAS.items() for area in areas
}
