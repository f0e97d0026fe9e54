"""A real development panel: US domestic flights (January-June 2001) as FreightML facts.

Source: the npm package ``vega-datasets`` 3.2.1 (BSD-3-Clause), files
``data/flights-3m.parquet`` (one row per flight: departure time, delay, distance, origin
and destination airport) and ``data/airports.csv`` (IATA code -> state). When the files
are not in ``--cache`` the package is fetched once with ``npm pack vega-datasets@3.2.1``
(npm checks the tarball's integrity); nothing else goes to the network.

The mapping onto the facts contract (src/freightml/data/schema.py):

- one series per (origin airport, destination airport); ``origin_station`` and
  ``destination_station`` are the IATA codes;
- ``volume_tonnes`` is the number of flights that departed on that day (a count, not
  tonnes: the panel is for the shape of real schedules, not for units);
- ``cargo_type`` is the route's distance band: ``short_haul`` (< 500 miles),
  ``medium_haul`` (500-1,499), ``long_haul`` (>= 1,500);
- ``origin_region`` / ``destination_region`` are the airports' US states;
- ``wagons`` is 0 (flights have no wagons; the wagon checks switch themselves off).

Kept: routes that flew on at least ``--min-active-share`` of the days, the
``--max-series`` busiest of them; days without a flight are rows with volume 0 (a pause),
so every series has every day. The facts go to ``--out`` (Parquet, under .freightml/ by
default, which git ignores) and a summary is printed: rows, series, date range, zero-day
share, weekday profile strength. ``--validate`` also measures validation (the figures of
bench/RESULTS.md, "Validation on real data"): on the panel with the settings of
configs/real-data.yaml, clean and with five planted values 1,000x their series' maximum,
and the same on the synthetic ``small`` data with the default settings, plus the recall of
the generator's ``anomalies=`` spikes.

Validate it with the real-data settings (no Russian vocabularies, no wagon checks):

    uv run python bench/real_data.py
    uv run freightml data validate .freightml/data/real-flights.parquet \
        --config configs/real-data.yaml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from freightml.config import DataSettings

PACKAGE = "vega-datasets"
VERSION = "3.2.1"
FLIGHTS = "data/flights-3m.parquet"
AIRPORTS = "data/airports.csv"
DEFAULT_CACHE = Path(".freightml/data/vega-datasets")
DEFAULT_OUT = Path(".freightml/data/real-flights.parquet")
# Distance bands in miles: [lower bound, name], the upper bound is the next lower bound.
DISTANCE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "short_haul"),
    (500, "medium_haul"),
    (1500, "long_haul"),
)
LAST_DAY = pd.Timestamp("2001-06-30")  # the file also holds a few flights at 2001-07-01 00:00
# The tiny sample committed as tests/fixtures/real_flights_sample.csv (--sample-out): a
# near-constant route, a shuttle with a weekday schedule (and the 5 March 2001 snowstorm in
# the north-east), a route with a strong weekly profile, one with pause days.
SAMPLE_ROUTES: tuple[tuple[str, str], ...] = (
    ("HNL", "ITO"),
    ("LGA", "BOS"),
    ("HOU", "SAT"),
    ("ATL", "BOS"),
)
SAMPLE_START, SAMPLE_DAYS = pd.Timestamp("2001-02-12"), 49


def ensure_package(cache: Path) -> Path:
    """The package's folder under ``cache``, with the two data files; ``npm pack`` once."""
    root = cache / f"{PACKAGE}-{VERSION}"
    if all((root / name).exists() for name in (FLIGHTS, AIRPORTS)):
        return root
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{PACKAGE}-{VERSION}.tgz"
    if not tarball.exists():
        print(f"fetching {PACKAGE}@{VERSION} with npm pack into {cache}", file=sys.stderr)
        try:
            subprocess.run(
                [
                    "npm",
                    "pack",
                    f"{PACKAGE}@{VERSION}",
                    "--pack-destination",
                    str(cache),
                    "--loglevel=error",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise SystemExit(
                "npm is not installed: install Node.js, or put the package's "
                f"{FLIGHTS} and {AIRPORTS} under {root}"
            ) from exc
    with tarfile.open(tarball, "r:gz") as tar:
        for name in (FLIGHTS, AIRPORTS):
            member = tar.getmember(f"package/{name}")
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"{tarball}: package/{name} is not a regular file")
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
    return root


def distance_band(miles: pd.Series) -> pd.Series:
    """The band name of each distance (see DISTANCE_BANDS)."""
    bounds = [b for b, _ in DISTANCE_BANDS[1:]]
    names = np.array([n for _, n in DISTANCE_BANDS])
    return pd.Series(names[np.searchsorted(bounds, miles.to_numpy(), side="right")], miles.index)


def build_panel(
    flights: pd.DataFrame,
    airports: pd.DataFrame,
    *,
    min_active_share: float = 0.9,
    max_series: int = 400,
) -> pd.DataFrame:
    """Daily flights per route as facts: every day of every kept route, pauses as 0."""
    if not 0 < min_active_share <= 1:
        raise ValueError(f"min_active_share must be in (0, 1], got {min_active_share}")
    if max_series < 1:
        raise ValueError(f"max_series must be >= 1, got {max_series}")
    day = flights["date"].dt.normalize()
    flights = flights.assign(day=day)[day <= LAST_DAY]
    days = pd.date_range(flights["day"].min(), flights["day"].max(), freq="D")
    daily = flights.groupby(["origin", "destination", "day"]).size().rename("flights")
    routes = daily.groupby(level=["origin", "destination"]).agg(["size", "sum"])
    active = routes[routes["size"] >= min_active_share * len(days)]
    kept = active.sort_values("sum", ascending=False).head(max_series).index
    if not len(kept):
        raise ValueError(f"no route flew on {min_active_share:.0%} of the {len(days)} days")
    grid = pd.MultiIndex.from_tuples(
        [(o, d, t) for o, d in kept for t in days], names=["origin", "destination", "day"]
    )
    volume = daily.reindex(grid, fill_value=0).reset_index()
    miles = flights.groupby(["origin", "destination"])["distance"].median()
    state = airports.set_index("iata")["state"]
    unknown = sorted(set(volume["origin"]).union(volume["destination"]) - set(state.dropna().index))
    if unknown:
        raise ValueError(f"airports without a state in {AIRPORTS}: {unknown}")
    route = pd.MultiIndex.from_frame(volume[["origin", "destination"]])
    return pd.DataFrame(
        {
            "date": volume["day"].astype("datetime64[ns]"),
            "origin_station": volume["origin"].astype("category"),
            "destination_station": volume["destination"].astype("category"),
            "origin_region": volume["origin"].map(state).astype("category"),
            "destination_region": volume["destination"].map(state).astype("category"),
            "cargo_type": distance_band(miles.reindex(route).reset_index(drop=True)).astype(
                "category"
            ),
            "volume_tonnes": volume["flights"].astype("float64"),
            "wagons": np.zeros(len(volume), dtype="int64"),
        }
    )


def weekday_strength(facts: pd.DataFrame) -> float:
    """Median over series of the variance share that the series' weekday means explain."""
    key = ["origin_station", "destination_station", "cargo_type"]
    v = facts["volume_tonnes"]
    by_series = facts.groupby(key, observed=True)["volume_tonnes"]
    weekday = facts.groupby([*key, facts["date"].dt.dayofweek], observed=True)["volume_tonnes"]
    total = (
        ((v - by_series.transform("mean")) ** 2)
        .groupby([facts[k] for k in key], observed=True)
        .sum()
    )
    resid = (
        ((v - weekday.transform("mean")) ** 2).groupby([facts[k] for k in key], observed=True).sum()
    )
    share = 1 - resid[total > 0] / total[total > 0]
    return float(share.median())


def summary(facts: pd.DataFrame) -> dict[str, object]:
    """Rows, series, date range, zero-day share and weekday profile strength."""
    key = ["origin_station", "destination_station", "cargo_type"]
    return {
        "rows": len(facts),
        "series": int(facts.groupby(key, observed=True).ngroups),
        "start": facts["date"].min().date().isoformat(),
        "end": facts["date"].max().date().isoformat(),
        "zero_day_share": float((facts["volume_tonnes"] == 0).mean()),
        "weekday_strength": weekday_strength(facts),
        "cargo_types": facts["cargo_type"].value_counts().to_dict(),
        "regions": int(pd.concat([facts["origin_region"], facts["destination_region"]]).nunique()),
    }


def sample(facts: pd.DataFrame) -> pd.DataFrame:
    """SAMPLE_ROUTES over SAMPLE_DAYS days from SAMPLE_START (the committed test sample)."""
    route = pd.MultiIndex.from_frame(facts[["origin_station", "destination_station"]].astype(str))
    end = SAMPLE_START + pd.Timedelta(days=SAMPLE_DAYS - 1)
    keep = route.isin(SAMPLE_ROUTES) & facts["date"].between(SAMPLE_START, end).to_numpy()
    out = facts[keep].astype({c: str for c in facts.columns if facts[c].dtype == "category"})
    found = set(zip(out["origin_station"], out["destination_station"], strict=True))
    if found != set(SAMPLE_ROUTES):
        raise ValueError(f"sample routes not in the panel: {sorted(set(SAMPLE_ROUTES) - found)}")
    return out.sort_values(["origin_station", "destination_station", "date"])


def plant_extremes(
    facts: pd.DataFrame, n: int = 5, factor: float = 1000.0, seed: int = 0
) -> tuple[pd.DataFrame, list[int]]:
    """A copy with one positive day of ``n`` random series set to ``factor`` x the series'
    maximum; returns it and the planted row numbers."""
    rng = np.random.default_rng(seed)
    key = ["origin_station", "destination_station", "cargo_type"]
    codes = facts.groupby(key, observed=True, sort=False).ngroup().to_numpy()
    volume = facts["volume_tonnes"].to_numpy(dtype=float).copy()
    peak = pd.Series(volume).groupby(codes).max()
    rows = []
    for series in rng.choice(np.unique(codes), n, replace=False):
        row = int(rng.choice(np.flatnonzero((codes == series) & (volume > 0))))
        volume[row] = factor * peak[series]
        rows.append(row)
    return facts.assign(volume_tonnes=volume), rows


def measure_validation(facts: pd.DataFrame, config: Path) -> list[dict[str, object]]:
    """Validation figures: real panel clean / planted, synthetic small clean / planted /
    with the generator's x10 spikes (their recall)."""
    from freightml.config import load_settings
    from freightml.data.synthetic import generate
    from freightml.data.validation import validate_facts

    def run(name: str, df: pd.DataFrame, planted: list[int], settings: DataSettings) -> dict:
        started = time.perf_counter()
        report = validate_facts(df, settings=settings)
        seconds = time.perf_counter() - started
        issues = {i.check: i for i in report.issues}
        anomaly, impossible = issues.get("volume_anomaly"), issues.get("impossible_volume")
        flagged = [e["row"] for i in (impossible, anomaly) if i for e in i.examples]
        n_anomaly = anomaly.n_rows if anomaly else 0
        return {
            "data": name,
            "rows": report.n_rows,
            "errors": sorted(i.check for i in report.errors),
            "anomaly_warning_rows": n_anomaly,
            "anomaly_warning_share": n_anomaly / report.n_rows,
            "impossible_rows": impossible.n_rows if impossible else 0,
            "planted_listed_first": (
                sorted(flagged[: len(planted)]) == sorted(planted) if planted else None
            ),
            "other_warnings": sorted(i.check for i in report.warnings if i is not anomaly),
            "seconds": round(seconds, 2),
        }

    real = load_settings(config).data
    default = DataSettings()
    small = generate("small")
    spiked = generate("small", anomalies=50)
    spikes = np.flatnonzero(spiked["volume_tonnes"].to_numpy() != small["volume_tonnes"].to_numpy())
    out = [
        run("real panel, clean", facts, [], real),
        run("real panel, 5 planted x1000", *plant_extremes(facts), real),
        run("synthetic small, clean", small, [], default),
        run("synthetic small, 5 planted x1000", *plant_extremes(small), default),
    ]
    spiked_run = run("synthetic small, anomalies=50 (x10)", spiked, [], default)
    found = set(flagged_rows(spiked, default).tolist())
    spiked_run["spikes_found"] = f"{len(found & set(spikes.tolist()))} of {len(spikes)}"
    out.append(spiked_run)
    return out


def flagged_rows(df: pd.DataFrame, settings: DataSettings) -> np.ndarray:
    """Every row the anomaly rule flags, as warning or error (a report shows 5 examples)."""
    from freightml.data.validation import anomaly_scores

    key = ["origin_station", "destination_station", "cargo_type"]
    codes = df.groupby(key, observed=True, sort=False).ngroup().to_numpy()
    volume = df["volume_tonnes"].to_numpy(dtype=float)
    weekday = df["date"].dt.dayofweek.to_numpy()
    z, _, robust_max = anomaly_scores(volume, codes, weekday, settings)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(
            (np.abs(z) > settings.anomaly_z) | (volume > settings.impossible_ratio * robust_max)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="facts file (.parquet)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="npm package cache")
    parser.add_argument("--min-active-share", type=float, default=0.9)
    parser.add_argument("--max-series", type=int, default=400)
    parser.add_argument(
        "--validate", action="store_true", help="also measure validation (bench/RESULTS.md)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("configs/real-data.yaml"),
        help="settings for --validate",
    )
    parser.add_argument(
        "--sample-out", type=Path, help="also write the tiny test sample (SAMPLE_ROUTES) as CSV"
    )
    args = parser.parse_args(argv)
    if args.out.suffix != ".parquet":
        parser.error(f"--out must end in .parquet, got {args.out}")
    root = ensure_package(args.cache)
    flights = pd.read_parquet(root / FLIGHTS, columns=["date", "distance", "origin", "destination"])
    airports = pd.read_csv(root / AIRPORTS, usecols=["iata", "state"])
    facts = build_panel(
        flights, airports, min_active_share=args.min_active_share, max_series=args.max_series
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    facts.to_parquet(args.out, index=False)
    s = summary(facts)
    print(f"wrote {args.out}")
    if args.sample_out:
        small = sample(facts)
        small.to_csv(args.sample_out, index=False, date_format="%Y-%m-%d")
        print(f"wrote {len(small)} rows to {args.sample_out}")
    if args.validate:
        for row in measure_validation(facts, args.config):
            print(json.dumps(row))
    print(
        f"rows {s['rows']:,}, series {s['series']:,}, {s['start']}..{s['end']}, "
        f"zero days {s['zero_day_share']:.2%}, weekday profile strength "
        f"{s['weekday_strength']:.2f} (median share of variance explained by weekday means), "
        f"{s['regions']} states, distance bands {s['cargo_types']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
