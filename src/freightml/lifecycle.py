"""The lifecycle stages as plain functions over paths: what each pipeline component calls.

Each function reads its inputs from files, calls the library, writes its outputs and
returns a small JSON-able dict of metadata. Nothing here knows about Kubeflow.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from freightml.config import Settings

log = logging.getLogger("freightml")

TIMINGS_ENV = "FREIGHTML_TIMINGS"
PIPELINE_ACTOR = "freightml-pipeline"


@contextmanager
def timed(step: str, kind: str = "work") -> Iterator[None]:
    """Time a block; append it to $FREIGHTML_TIMINGS (JSON lines) when that is set.

    The benchmark uses it to split a pipeline's wall time into the library's own work
    and the pipeline/tracking overhead around it.
    """
    started = time.perf_counter()
    try:
        yield
    finally:
        target = os.environ.get(TIMINGS_ENV)
        if target:
            with open(target, "a") as fh:
                line = {"step": step, "kind": kind, "seconds": time.perf_counter() - started}
                fh.write(json.dumps(line) + "\n")


# -- ingest ----------------------------------------------------------------------------
def load_source(settings: Settings) -> tuple[pd.DataFrame, str, str]:
    """The configured facts, their source URI and the source's sha256."""
    from freightml.data.sources import digest_facts, file_digest, load_facts
    from freightml.data.synthetic import generate

    d = settings.data
    if d.source_uri:
        facts = load_facts(
            d.source_uri,
            column_mapping=d.column_mapping or None,
            start=d.start_date,
            end=d.end_date,
            regions=d.regions,
        )
        return facts, d.source_uri, file_digest(d.source_uri)
    facts = generate(d.synthetic_size, seed=d.seed)
    return facts, f"synthetic:{d.synthetic_size}?seed={d.seed}", digest_facts(facts)


def freshest_window(facts: pd.DataFrame, days: int) -> pd.DataFrame:
    """The last ``days`` days of facts (retraining always uses the newest data)."""
    end = facts["date"].max()
    start = end - pd.Timedelta(days=days - 1)
    return facts.loc[facts["date"] >= start].reset_index(drop=True)


def describe_facts(facts: pd.DataFrame) -> dict[str, Any]:
    from freightml.data.schema import SERIES_KEY
    from freightml.data.sources import digest_facts

    return {
        "digest": digest_facts(facts),
        "rows": int(len(facts)),
        "series": int(facts.groupby(list(SERIES_KEY), observed=True).ngroups),
        "start": str(facts["date"].min().date()),
        "end": str(facts["date"].max().date()),
        "regions": sorted(
            set(facts["origin_region"].astype(str)) | set(facts["destination_region"].astype(str))
        ),
        "cargo_types": sorted(set(facts["cargo_type"].astype(str))),
    }


def ingest_data(settings: Settings, out_path: str | Path) -> dict[str, Any]:
    """Load the source, keep the freshest training window, write it as Parquet."""
    from freightml.data.sources import save_facts

    with timed("ingest_data"):
        facts, uri, source_sha = load_source(settings)
        if facts.empty:
            raise ValueError(f"no facts in {uri} after the date and region filters")
        window = freshest_window(facts, settings.data.train_window_days)
        save_facts(window, Path(out_path))
        info = describe_facts(window)
    info.update(
        source_uri=uri,
        source_sha256=source_sha,
        window_days=settings.data.train_window_days,
        source_rows=int(len(facts)),
    )
    log.info("ingested %s rows, %s series, %s..%s from %s", info["rows"], info["series"],
             info["start"], info["end"], uri)
    return info


# -- validate --------------------------------------------------------------------------
def validate_data(
    settings: Settings,
    facts_path: str | Path,
    report_path: str | Path,
    report_html_path: str | Path,
    reference_path: str | Path | None = None,
) -> dict[str, Any]:
    """Validate the facts, write the report (JSON + HTML), raise on hard errors."""
    from freightml.data.validation import validate_facts

    with timed("validate_data"):
        facts = pd.read_parquet(facts_path)
        reference = pd.read_parquet(reference_path) if reference_path else None
        report = validate_facts(
            facts,
            reference=reference,
            max_missing_day_share=settings.data.max_missing_day_share,
            anomaly_z=settings.data.anomaly_z,
        )
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(report.to_json())
        Path(report_html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_html_path).write_text(report.to_html())
    for issue in report.warnings:
        log.warning("data warning [%s]: %s", issue.check, issue.message)
    for issue in report.errors:
        log.error("data error [%s]: %s", issue.check, issue.message)
    report.raise_for_errors()
    return {"errors": len(report.errors), "warnings": len(report.warnings), "ok": report.ok}


# -- features and training -------------------------------------------------------------
def feature_kwargs(settings: Settings) -> dict[str, Any]:
    f = settings.features
    return {
        "origin_step_days": f.origin_step_days,
        "horizon_max": f.horizon_max,
        "horizons_per_origin": f.horizons_per_origin,
        "min_history_days": f.min_history_days,
    }


def build_features(settings: Settings, facts_path: str | Path, out_path: str | Path) -> dict:
    """Cut the training examples from the facts and write them as Parquet."""
    from freightml.features.build import build_examples

    with timed("build_features"):
        facts = pd.read_parquet(facts_path)
        examples = build_examples(facts, seed=settings.model.params.get("random_state", 0),
                                  **feature_kwargs(settings))
        examples.to_parquet(out_path, index=False)
    return {"rows": int(len(examples)), "columns": int(examples.shape[1])}


def make_estimator(settings: Settings, name: str | None = None, params: dict | None = None):
    from freightml.models import make_model

    return make_model(name or settings.model.name, params if params is not None else settings.model.params)


def train_model(settings: Settings, features_path: str | Path, model_dir: str | Path) -> dict:
    """Fit the configured model on all examples; save it as an MLflow sklearn model."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from freightml.models import SKOPS_TRUSTED_TYPES

    with timed("train_model"):
        examples = pd.read_parquet(features_path)
        model = make_estimator(settings)
        model.fit(examples)
        # the model input: its features and the scale they are multiplied by
        columns = list(dict.fromkeys([*model.feature_columns_, "scale"]))
        sample = examples.loc[examples["y"].notna(), columns].head(5)
        signature = infer_signature(sample, model.predict(sample))
    with timed("train_model.save", kind="tracking"):
        target = Path(model_dir)
        if target.exists():
            shutil.rmtree(target)
        mlflow.sklearn.save_model(
            model,
            str(target),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            signature=signature,
            input_example=sample,
        )
    return {"model": settings.model.name, "train_rows": int(examples["y"].notna().sum())}


# -- evaluation ------------------------------------------------------------------------
def _champion_recipe(settings: Settings) -> dict[str, Any] | None:
    """The current champion's model, parameters, backtest window and metrics, if any."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None  # a local store that does not exist yet holds no champion (and no import)
    from freightml.tracking import champion_version, configure_mlflow

    client = configure_mlflow(settings)
    version = champion_version(client, settings.tracking.registered_model)
    if version is None:
        return None
    mv = client.get_model_version(settings.tracking.registered_model, version)
    run = client.get_run(mv.run_id)
    params = run.data.params
    return {
        "version": version,
        "run_id": mv.run_id,
        "model": params.get("model"),
        "params": json.loads(params.get("model_params", "{}")),
        "cutoffs": params.get("backtest_cutoffs"),
        "data_digest": params.get("data_digest"),
        "metrics": dict(run.data.metrics),
    }


def _plots_page(paths: list[Path]) -> str:
    images = "\n".join(
        f'<h2>{p.stem.replace("_", " ")}</h2><img src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}" style="max-width:100%">'
        for p in paths
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Backtest</title></head><body>{images}</body></html>"


def evaluate_model(
    settings: Settings,
    facts_path: str | Path,
    out_dir: str | Path,
    plots_html_path: str | Path | None = None,
) -> dict[str, float]:
    """Backtest by the methodology, check the gates and backtest the champion alike.

    Writes metrics.json, gates.json, champion.json, predictions.parquet, per-horizon and
    per-segment tables and PNG plots into ``out_dir``; returns the headline metrics.
    """
    from freightml.evaluation import evaluate_gates, load_methodology, plot_backtest, run_backtest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methodology = load_methodology(settings.methodology_path)
    with timed("evaluate_model"):
        facts = pd.read_parquet(facts_path)
        kwargs = feature_kwargs(settings)
        result = run_backtest(facts, lambda: make_estimator(settings), methodology, kwargs)
        gates = evaluate_gates(result, methodology)
        metrics = result.metrics_dict()
        cutoffs = ",".join(str(pd.Timestamp(c).date()) for c in result.cutoffs)
        result.predictions.to_parquet(out / "predictions.parquet", index=False)
        result.by_horizon().to_csv(out / "by_horizon.csv", index=False)
        for column in methodology.segments:
            result.by_segment(column).to_csv(out / f"by_segment_{column}.csv", index=False)
        plots = plot_backtest(result, out / "plots")
    with timed("evaluate_model.champion", kind="tracking"):
        champion = _champion_recipe(settings)
    if champion is not None:
        from freightml.data.sources import digest_facts

        same_window = champion["cutoffs"] == cutoffs and champion["data_digest"] == digest_facts(facts)
        if same_window:
            champion["how"] = "recorded metrics (same data digest and cutoffs)"
        else:
            with timed("evaluate_model.champion_backtest"):
                champ_result = run_backtest(
                    facts,
                    lambda: make_estimator(settings, champion["model"], champion["params"]),
                    methodology,
                    kwargs,
                )
            champion["metrics"] = champ_result.metrics_dict()
            champion["how"] = "champion's model and parameters backtested on this window"
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "gates.json").write_text(json.dumps(gates.to_dict(), indent=2))
    (out / "champion.json").write_text(json.dumps(champion, indent=2))
    (out / "window.json").write_text(json.dumps({"cutoffs": cutoffs}))
    if plots_html_path:
        Path(plots_html_path).write_text(_plots_page(plots))
    headline = {k: float(metrics[k]) for k in ("wape", "wape_baseline", "wape_ratio", "bias", "mae")}
    headline["gates_passed"] = float(gates.passed)
    log.info("backtest WAPE %.4f (baseline %.4f, ratio %.3f), bias %+.2f%%, gates %s",
             headline["wape"], headline["wape_baseline"], headline["wape_ratio"],
             100 * headline["bias"], "passed" if gates.passed else "FAILED")
    return headline


# -- registration ----------------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    run_id: str
    version: str
    champion: str | None
    promoted: bool
    decision: str
    cards_dir: Path


def _dataset_input(info: dict[str, Any]):
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    uri = info["source_uri"]
    try:
        source = resolve_dataset_source(uri)
    except Exception:  # noqa: BLE001 - synthetic:... has no registered source type
        source = HTTPDatasetSource(url=uri)
    return MetaDataset(source=source, name="freight-facts", digest=info["digest"][:32])


def card_context(
    settings: Settings,
    *,
    version: str,
    run_id: str,
    aliases: list[str],
    decision: str,
    facts_info: dict[str, Any],
    validation: dict[str, Any],
    evaluation_dir: Path,
    env: dict[str, str],
    feature_columns: list[str],
    categorical: list[str],
) -> dict[str, Any]:
    """Everything the card templates show, taken from the run's own outputs."""
    from freightml.evaluation import load_methodology

    methodology = load_methodology(settings.methodology_path)
    metrics = json.loads((evaluation_dir / "metrics.json").read_text())
    gates = json.loads((evaluation_dir / "gates.json").read_text())
    champion = json.loads((evaluation_dir / "champion.json").read_text())
    window = json.loads((evaluation_dir / "window.json").read_text())
    by_h = pd.read_csv(evaluation_dir / "by_horizon.csv")
    segments = {}
    for column in methodology.segments:
        table = pd.read_csv(evaluation_dir / f"by_segment_{column}.csv")
        table = table.rename(columns={column: "segment"}).sort_values("actual_tonnes", ascending=False)
        segments[column] = table.to_dict("records")
    if champion is None:
        comparison = "there was no champion; this version competes against the gates only."
    else:
        comparison = (
            f"champion v{champion['version']} on the same window ({champion['how']}): "
            f"WAPE {champion['metrics'].get('wape', float('nan')):.4f} vs this version's "
            f"{metrics['wape']:.4f}."
        )
    return {
        "model": {
            "name": settings.tracking.registered_model,
            "version": version,
            "run_id": run_id,
            "aliases": aliases,
            "decision": decision,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "problem": (
            "Forecast the daily freight volume (tonnes, and wagons from tonnes) of every "
            "(origin station, destination station, cargo type) series 1 to "
            f"{settings.features.horizon_max} days ahead, so that wagons and repairs can be "
            "planned."
        ),
        "approach": {
            "model_name": settings.model.name,
            "algorithm": (
                "one global scikit-learn HistGradientBoostingRegressor over all series, "
                "trained on volume relative to the series' recent level, direct multi-horizon"
            ),
            "params": settings.model.params,
            "features": feature_columns,
            "categorical": categorical,
            "horizon_max": settings.features.horizon_max,
        },
        "methodology": {
            "path": str(settings.methodology_path.name),
            "folds": methodology.backtest.folds,
            "step_days": methodology.backtest.step_days,
            "horizon_days": methodology.backtest.horizon_days,
            "metrics": list(methodology.metrics),
            "segments": list(methodology.segments),
            "cutoffs": window["cutoffs"].split(","),
            "summary": {
                "wape": metrics.get("wape"),
                "wape_baseline": metrics.get("wape_baseline"),
                "wape_ratio": metrics.get("wape_ratio"),
                "mae": metrics.get("mae"),
                "mae_baseline": metrics.get("mae_baseline"),
                "bias": metrics.get("bias"),
                "bias_baseline": metrics.get("bias_baseline"),
            },
            "gates": gates["checks"],
            "gates_passed": gates["passed"],
            "champion_comparison": comparison,
            "by_horizon": by_h.to_dict("records"),
            "by_segment": segments,
        },
        "data": {
            "source_uri": facts_info["source_uri"],
            "file_digest": facts_info["source_sha256"],
            "digest": facts_info["digest"],
            "rows": facts_info["rows"],
            "series": facts_info["series"],
            "start": facts_info["start"],
            "end": facts_info["end"],
            "regions": facts_info["regions"],
            "cargo_types": facts_info["cargo_types"],
            "window_days": facts_info.get("window_days", settings.data.train_window_days),
            "validation": {
                "errors": len(validation.get("errors", [])),
                "warnings": len(validation.get("warnings", [])),
                "messages": [i["message"] for i in validation.get("warnings", [])][:10],
            },
        },
        "tools": env,
        "limitations": [
            f"Forecasts 1 to {settings.features.horizon_max} days ahead only.",
            "A series needs "
            f"{settings.features.min_history_days} days of history before it is forecast; "
            "new stations fall back to nothing until then.",
            "Trained on regions "
            + ", ".join(facts_info["regions"])
            + "; other regions are outside the training distribution (monitor for drift).",
            "Exogenous drivers (tariffs, export policy, wagon availability) are not modelled.",
        ],
    }


def register_model(
    settings: Settings,
    *,
    facts_path: str | Path,
    facts_info: dict[str, Any],
    validation_path: str | Path,
    model_dir: str | Path,
    evaluation_dir: str | Path,
    card_paths: tuple[str, str, str] | None = None,
    actor: str = PIPELINE_ACTOR,
) -> Registration:
    """Log the run, register a challenger, promote it when it passes the gates and
    beats the champion on the same backtest window, and render the cards."""
    import mlflow
    from mlflow.models import Model

    from freightml.evaluation import beats_champion, load_methodology
    from freightml.features.build import CATEGORICAL_FEATURES
    from freightml.tracking import (
        CHALLENGER,
        champion_version,
        configure_mlflow,
        environment_info,
        promote,
    )
    from freightml.cards import render_cards

    evaluation = Path(evaluation_dir)
    methodology = load_methodology(settings.methodology_path)
    metrics = json.loads((evaluation / "metrics.json").read_text())
    gates = json.loads((evaluation / "gates.json").read_text())
    champion = json.loads((evaluation / "champion.json").read_text())
    window = json.loads((evaluation / "window.json").read_text())
    validation = json.loads(Path(validation_path).read_text())
    name = settings.tracking.registered_model
    env = environment_info()

    with timed("register_model.tracking", kind="tracking"):
        client = configure_mlflow(settings)
        with mlflow.start_run(run_name=f"train {facts_info['end']} {facts_info['digest'][:8]}") as run:
            run_id = run.info.run_id
            mlflow.set_tags({f"freightml.{k}": v for k, v in env.items()})
            mlflow.set_tag("mlflow.source.git.commit", env["git_commit"])
            mlflow.log_params(
                {
                    "model": settings.model.name,
                    "model_params": json.dumps(settings.model.params, sort_keys=True),
                    **{f"model.{k}": v for k, v in settings.model.params.items()},
                    **{f"features.{k}": v for k, v in feature_kwargs(settings).items()},
                    "data_source": facts_info["source_uri"],
                    "data_source_sha256": facts_info["source_sha256"],
                    "data_digest": facts_info["digest"],
                    "data_start": facts_info["start"],
                    "data_end": facts_info["end"],
                    "data_rows": facts_info["rows"],
                    "data_series": facts_info["series"],
                    "train_window_days": facts_info.get("window_days"),
                    "backtest_cutoffs": window["cutoffs"],
                    "methodology": methodology.model_dump_json(),
                }
            )
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            mlflow.log_metric("gates_passed", float(gates["passed"]))
            mlflow.log_input(_dataset_input(facts_info), context="training")
            mlflow.log_artifact(str(validation_path), "validation")
            mlflow.log_artifact(str(settings.methodology_path), "methodology")
            mlflow.log_artifacts(str(evaluation), "evaluation")

            # the model directory train_model wrote is already an MLflow model (skops,
            # signature, input example): log it as it is instead of serialising it again
            mlflow.log_artifacts(str(model_dir), "model")
            try:
                client.get_registered_model(name)
            except mlflow.exceptions.MlflowException:
                client.create_registered_model(
                    name, description="Daily freight volume per (origin, destination, cargo)."
                )
            mv = mlflow.register_model(f"runs:/{run_id}/model", name)
            version = str(mv.version)
            client.set_model_version_tag(name, version, "freightml.gates", "passed" if gates["passed"] else "failed")
            client.set_model_version_tag(name, version, "freightml.data_digest", facts_info["digest"])
            client.set_model_version_tag(name, version, "freightml.git_commit", env["git_commit"])
            client.set_registered_model_alias(name, CHALLENGER, version)

            if not gates["passed"]:
                failed = [g["name"] for g in gates["checks"] if not g["passed"]]
                decision = f"kept as challenger: gates failed ({', '.join(failed)})"
                promoted = False
            elif champion is None:
                decision, promoted = "promoted to champion: gates passed, no previous champion", True
            else:
                wins, why = beats_champion(metrics, champion["metrics"], methodology)
                promoted = wins
                decision = ("promoted to champion: " if wins else "kept as challenger: ") + why
            if promoted:
                promote(client, name, version, reason=decision, actor=actor)
            mlflow.set_tag("freightml.decision", decision)
            client.set_model_version_tag(name, version, "freightml.decision", decision)

            aliases = sorted(
                a for a, v in client.get_registered_model(name).aliases.items() if str(v) == version
            )
            features = Model.load(str(model_dir)).signature.inputs.input_names()

    with timed("register_model.cards"):
        context = card_context(
            settings,
            version=version,
            run_id=run_id,
            aliases=aliases,
            decision=decision,
            facts_info=facts_info,
            validation=validation,
            evaluation_dir=evaluation,
            env=env,
            feature_columns=features,
            categorical=list(CATEGORICAL_FEATURES),
        )
        cards_dir = settings.home.resolve() / "cards" / f"{name}-v{version}"
        cards = render_cards(context, cards_dir)
    with timed("register_model.log_cards", kind="tracking"):
        client.log_artifacts(run_id, str(cards_dir), "cards")
    if card_paths is not None:
        for src, dst in zip((cards.model_md, cards.model_html, cards.project_md), card_paths):
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    log.info("registered %s v%s (%s)", name, version, decision)
    return Registration(
        run_id=run_id,
        version=version,
        champion=champion_version(client, name),
        promoted=promoted,
        decision=decision,
        cards_dir=cards_dir,
    )


# -- batch scoring ---------------------------------------------------------------------
ACTIVE_DAYS = 28


def active_facts(facts: pd.DataFrame, days: int = ACTIVE_DAYS) -> pd.DataFrame:
    """Facts of the series that carried anything in the last ``days`` days."""
    from freightml.data.schema import SERIES_KEY

    key = list(SERIES_KEY)
    recent = facts.loc[facts["date"] > facts["date"].max() - pd.Timedelta(days=days)]
    active = recent.loc[recent["volume_tonnes"] > 0, key].drop_duplicates()
    return facts.merge(active, on=key, how="inner")


def score_batch(
    settings: Settings, facts_path: str | Path, out_path: str | Path, facts_info: dict | None = None
) -> dict[str, Any]:
    """Forecast every active series 1..horizon_max days after the last fact with the
    champion; write the forecasts as Parquet and into the collector's store with lineage."""
    import mlflow.sklearn

    from freightml.collector.store import Store
    from freightml.data.sources import digest_facts
    from freightml.serving.history import HistoryWindow
    from freightml.tracking import champion_version, configure_mlflow

    client = configure_mlflow(settings)
    name = settings.tracking.registered_model
    version = champion_version(client, name)
    if version is None:
        raise RuntimeError(f"no champion of {name!r} to score with: run the training pipeline first")
    with timed("score_batch"):
        facts = active_facts(pd.read_parquet(facts_path))
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        window = HistoryWindow.build(facts, horizon_max=settings.features.horizon_max)
        features = window.features
        tonnes = model.predict(features)
        capacity = window.capacity.repeat(window.horizon_max)
        forecasts = features[["origin_station", "destination_station", "cargo_type",
                              "origin_date", "target_date", "horizon"]].copy()
        forecasts["tonnes"] = tonnes
        forecasts["wagons"] = pd.Series(tonnes / capacity).round().astype("int64").to_numpy()
        forecasts.to_parquet(out_path, index=False)
    digest = (facts_info or {}).get("digest") or digest_facts(facts)
    run_id = f"batch-{window.origin_date}-v{version}-{digest[:12]}"
    with timed("score_batch.store", kind="tracking"):
        store = Store(settings.collector_store_url).create_all()
        written = store.write_forecasts(
            forecasts, run_id=run_id, model_name=name, model_version=version,
            lineage=json.dumps({"data_digest": digest, "model_uri": f"models:/{name}/{version}"}),
            source="batch",
        )
    log.info("scored %s series x %s days with %s v%s: %s new forecasts (run %s)",
             window.n_series, window.horizon_max, name, version, written, run_id)
    return {"run_id": run_id, "model_version": version, "rows": int(len(forecasts)),
            "new_rows": int(written), "series": int(window.n_series), "origin": window.origin_date}
