"""A recursive global LightGBM (mlforecast), fitted at one forecast origin.

The portfolio's one tree model that is fitted where the statistical ones are: at the
forecast origin, on every series' history up to it (freightml.models.statistical builds that
history and calls ``forecast`` here). Unlike the feature-row GBM (freightml.models.gbm,
direct: one model for every horizon, features counted back from the origin), it predicts
one day at a time and feeds each prediction back as the next day's lag, so its lags always
count back from the target day and it sees the target weekday's recent history.

Recipe (the mlforecast setup measured as a peer in bench/RESULTS.md, "Forecast portfolio"):
lags of 7, 14, 21 and 28 days; rolling means of 7 and 28 days and same-weekday means of 4
and 8 weeks, all on the 7-day lag; the weekday; every series scaled by its own mean and
standard deviation (``LocalStandardScaler``) so one model serves small and large lanes; L1
loss (the median, as WAPE rewards); LightGBM's defaults otherwise, seeded and deterministic.
``lightgbm_holidays`` is the same recipe that also reads whether the target day is a public
holiday or within 3 days of one (``HOLIDAY_FLAGS``, of ``features.holiday_country``): a
holiday is known in advance, so it is a future input (mlforecast's ``X_df``), never a lag.
Whether it helps depends on the panel and on the calendar being the right country's; the
selection (freightml.evaluation.selection) offers it only where the calendar measurably
moves the panel (freightml.features.calendar.holiday_evidence).

Fitting at the origin makes the backtest, batch scoring and serving score the same procedure:
the registered model carries this recipe, and the predictor fits it when its history window
refreshes (seconds for a few thousand series), never per request.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from freightml.features.calendar import calendar_table

RECURSIVE_MODELS: tuple[str, ...] = ("lightgbm", "lightgbm_holidays")
HOLIDAY_AWARE = "lightgbm_holidays"  # the one that reads the holiday calendar
# the holiday inputs: flags only (the distances to the next and last holiday ramp between
# holidays, which a tree reads as a clock: measured, they fitted the validation fold of the
# development panel with a foreign calendar and lost on the reported folds)
HOLIDAY_FLAGS = ["is_holiday", "holiday_within_3d"]
LAGS = (7, 14, 21, 28)
MIN_TRAIN_DAYS = 63  # below that on every series there is (almost) nothing to learn from


def _engine(name: str, n_jobs: int) -> Any:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean, SeasonalRollingMean
    from mlforecast.target_transforms import LocalStandardScaler

    model = LGBMRegressor(
        objective="l1",
        n_jobs=n_jobs,
        random_state=0,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    return MLForecast(
        models={name: model},
        freq="D",
        lags=list(LAGS),
        lag_transforms={
            7: [
                RollingMean(window_size=7),
                RollingMean(window_size=28),
                SeasonalRollingMean(season_length=7, window_size=4),
                SeasonalRollingMean(season_length=7, window_size=8),
            ]
        },
        date_features=["dayofweek"],
        target_transforms=[LocalStandardScaler()],
    )


def _holidays(long: pd.DataFrame, horizon: int, country: str) -> pd.DataFrame:
    """The holiday flags (``ds`` + HOLIDAY_FLAGS) of every day from the first history day to
    ``horizon`` days after the last."""

    start, end = long["ds"].min(), long["ds"].max() + pd.Timedelta(days=horizon)
    table = calendar_table(start, end, country)[HOLIDAY_FLAGS]
    return table.rename_axis("ds").reset_index()


def forecast(
    long: pd.DataFrame,
    horizon: int,
    *,
    name: str = "lightgbm",
    holiday_country: str | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Fit model ``name`` (of RECURSIVE_MODELS) on ``long`` (``unique_id``, ``ds`` dates,
    ``y``: complete daily series, each ending on the origin) and forecast ``horizon`` days:
    ``unique_id``, ``ds``, ``<name>``. ``lightgbm_holidays`` reads the holidays of
    ``holiday_country`` (required for it). Series whose history is too short for any
    training row are still forecast (their missing lags are NaN, which the trees route).
    When no series has ``MIN_TRAIN_DAYS`` of history, every forecast is NaN (the
    portfolio's fallback answers).
    """
    if name not in RECURSIVE_MODELS:
        raise ValueError(f"unknown recursive model {name!r}; known: {list(RECURSIVE_MODELS)}")
    if name == HOLIDAY_AWARE and not holiday_country:
        raise ValueError(f"{name} needs a holiday_country")
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    columns = ["unique_id", "ds", name]
    if long.empty:
        return pd.DataFrame(columns=columns)
    if long.groupby("unique_id").size().max() < MIN_TRAIN_DAYS:
        last = long.groupby("unique_id")["ds"].max()
        return pd.DataFrame(
            {
                "unique_id": np.repeat(last.index.to_numpy(), horizon),
                "ds": (
                    np.repeat(last.to_numpy(), horizon)
                    + np.tile(pd.to_timedelta(np.arange(1, horizon + 1), unit="D"), len(last))
                ),
                name: np.nan,
            }
        )
    engine = _engine(name, n_jobs)
    calendar = None
    if name == HOLIDAY_AWARE:
        assert holiday_country  # checked above
        calendar = _holidays(long, horizon, holiday_country)
        long = long.merge(calendar, on="ds", how="left")
    with warnings.catch_warnings():
        # young series contribute no training row: expected, and they are still forecast
        warnings.filterwarnings("ignore", message=".*dropped completely.*")
        engine.fit(long, static_features=[])  # a constant series scales by 1 (coreforecast)
    future = None
    if calendar is not None:
        future = engine.make_future_dataframe(horizon).merge(calendar, on="ds", how="left")
    out = engine.predict(horizon, X_df=future)
    out = out.reset_index() if "unique_id" not in out.columns else out
    return out[columns]
