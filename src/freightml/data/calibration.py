"""The published figures the synthetic generator is calibrated to (freightml.data.synthetic):
where each regional railway loads and unloads, and the monthly index of each cargo's daily
loading. The figures and their sources are listed in docs/data.md.
"""

from __future__ import annotations

# General activity of each regional railway: share of stations and default lane ends.
REGION_WEIGHT: dict[str, float] = {
    "Kaliningrad": 0.02, "Moscow": 0.08, "October": 0.08, "Northern": 0.06,
    "Gorky": 0.05, "South-Eastern": 0.06, "North Caucasus": 0.08, "Kuibyshev": 0.06,
    "Volga": 0.04, "Sverdlovsk": 0.08, "South Urals": 0.06, "West Siberian": 0.14,
    "Krasnoyarsk": 0.05, "East Siberian": 0.05, "Trans-Baikal": 0.03, "Far Eastern": 0.06,
}  # fmt: skip
REGION_CODE: dict[str, str] = {
    "Kaliningrad": "KLG", "Moscow": "MOS", "October": "OCT", "Northern": "NOR",
    "Gorky": "GOR", "South-Eastern": "SEA", "North Caucasus": "NCA", "Kuibyshev": "KUI",
    "Volga": "VOL", "Sverdlovsk": "SVE", "South Urals": "SUR", "West Siberian": "WSB",
    "Krasnoyarsk": "KRA", "East Siberian": "ESB", "Trans-Baikal": "TBK", "Far Eastern": "FEA",
}  # fmt: skip

# Where each cargo is loaded and unloaded (assumed geography; coal: Kuzbass = West Siberian
# loads ~2/3 of coal, i.e. ~18-20% of all tonnes as in freight-figures.md). Others: REGION_WEIGHT.
ORIGIN_WEIGHT: dict[str, dict[str, float]] = {
    "coal": {"West Siberian": 0.68, "Krasnoyarsk": 0.09, "East Siberian": 0.07,
             "Trans-Baikal": 0.04, "Far Eastern": 0.04, "Northern": 0.04, "North Caucasus": 0.04},
    "oil": {"West Siberian": 0.20, "Kuibyshev": 0.18, "Volga": 0.12, "Sverdlovsk": 0.12,
            "Gorky": 0.10, "Moscow": 0.08, "East Siberian": 0.10, "North Caucasus": 0.05,
            "Far Eastern": 0.05},
    "iron_ore": {"South-Eastern": 0.40, "October": 0.20, "Sverdlovsk": 0.15,
                 "West Siberian": 0.10, "East Siberian": 0.05, "South Urals": 0.10},
    "grain": {"North Caucasus": 0.30, "South-Eastern": 0.20, "Volga": 0.15, "Kuibyshev": 0.10,
              "South Urals": 0.10, "West Siberian": 0.10, "Moscow": 0.05},
    "containers": {"Moscow": 0.25, "October": 0.20, "Far Eastern": 0.25, "North Caucasus": 0.10,
                   "Sverdlovsk": 0.10, "West Siberian": 0.10},
    "timber": {"Northern": 0.25, "East Siberian": 0.25, "Krasnoyarsk": 0.15, "Far Eastern": 0.10,
               "October": 0.10, "Sverdlovsk": 0.05, "Trans-Baikal": 0.10},
    "ferrous_metals": {"South Urals": 0.30, "South-Eastern": 0.20, "Northern": 0.15,
                       "Sverdlovsk": 0.15, "West Siberian": 0.20},
}  # fmt: skip
DESTINATION_WEIGHT: dict[str, dict[str, float]] = {
    "coal": {"Far Eastern": 0.30, "October": 0.22, "North Caucasus": 0.15, "South Urals": 0.08,
             "Sverdlovsk": 0.07, "West Siberian": 0.06, "Moscow": 0.04, "Kaliningrad": 0.03,
             "East Siberian": 0.05},
    "oil": {"October": 0.30, "North Caucasus": 0.30, "Far Eastern": 0.20, "Moscow": 0.10,
            "Kaliningrad": 0.05, "Northern": 0.05},
    "iron_ore": {"South Urals": 0.25, "Northern": 0.20, "South-Eastern": 0.20,
                 "West Siberian": 0.15, "Far Eastern": 0.10, "October": 0.10},
    "grain": {"North Caucasus": 0.60, "October": 0.10, "Far Eastern": 0.10, "Moscow": 0.10,
              "Volga": 0.10},
    "containers": ORIGIN_WEIGHT["containers"],
    "timber": {"Far Eastern": 0.25, "October": 0.20, "Trans-Baikal": 0.20, "Moscow": 0.15,
               "North Caucasus": 0.10, "Northern": 0.10},
    "ferrous_metals": {"October": 0.25, "North Caucasus": 0.25, "Far Eastern": 0.15,
                       "Moscow": 0.20, "Volga": 0.15},
}  # fmt: skip

# 2023 daily-rate index by cargo, Jan..Dec (freight-figures.md; May-Jul given as one value;
# Oct-Dec not published -> 1.0, except grain whose export peak runs Aug-Oct).
MONTHLY_INDEX: dict[str, tuple[float, ...]] = {
    "coal": (1.02, 1.08, 1.08, 1.03, 0.97, 0.97, 0.97, 0.93, 0.95, 1.0, 1.0, 1.0),
    "oil": (1.04, 1.06, 1.10, 0.98, 0.96, 0.96, 0.96, 0.97, 0.98, 1.0, 1.0, 1.0),
    "construction": (0.79, 0.99, 1.01, 1.02, 1.06, 1.06, 1.06, 1.02, 1.00, 1.0, 1.0, 1.0),
    "grain": (0.87, 1.05, 1.06, 1.06, 0.91, 0.91, 0.91, 1.10, 1.14, 1.10, 1.0, 1.0),
    "timber": (0.91, 1.05, 1.12, 1.12, 0.97, 0.97, 0.97, 0.95, 0.94, 1.0, 1.0, 1.0),
    "containers": (0.90, 0.97, 1.02, 1.05, 1.01, 1.01, 1.01, 1.01, 1.03, 1.0, 1.0, 1.0),
    "fertilisers": (0.97, 0.99, 0.97, 0.99, 1.01, 1.01, 1.01, 1.01, 1.02, 1.0, 1.0, 1.0),
}
SEASON_PROFILE = {"cement": "construction"}  # assumed: cement follows the building season
