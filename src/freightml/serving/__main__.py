"""``python -m freightml.serving``: the predictor as a process (container entrypoint, tests).

Settings come from --config (or --settings) / $FREIGHTML_CONFIG / configs/freightml.yaml
and FREIGHTML_* variables, as everywhere else; options given here override ``serving.*``.
KServe's own command-line options do not apply: ``serve()`` configures the ModelServer.
"""

from __future__ import annotations

import argparse

from freightml.config import load_settings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m freightml.serving", description=__doc__)
    p.add_argument(
        "--config",
        "--settings",
        dest="settings",
        help="settings YAML (default: $FREIGHTML_CONFIG or configs/freightml.yaml)",
    )
    p.add_argument("--model-uri", help="models:/<name>@<alias>, models:/<name>/<v> or a URI")
    p.add_argument("--model-dir", help="an MLflow model directory (KServe: /mnt/models)")
    p.add_argument("--model-version", help="the version a --model-dir holds (for responses)")
    p.add_argument("--history", help="facts file/URI (CSV or Parquet); default: settings")
    p.add_argument("--listen-host", help="default serving.host (127.0.0.1); 0.0.0.0 in a pod")
    p.add_argument("--listen-port", type=int, help="default serving.http_port (8080)")
    p.add_argument("--collector-url", help="post request/response CloudEvents here")
    p.add_argument(
        "--reload-seconds", type=float, help="poll the registry alias this often (0 = never)"
    )
    p.add_argument("--history-seconds", type=float, help="re-read the facts this often (0 = never)")
    p.add_argument("--namespace", default="default", help="ce-namespace of CloudEvents")
    p.add_argument("--log-requests", action="store_true", help="keep per-request log lines")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.settings)
    except (FileNotFoundError, ValueError) as exc:
        p.error(f"configuration error: {exc}")

    from freightml.serving.server import serve  # noqa: PLC0415

    serve(
        settings,
        model_uri=args.model_uri,
        model_dir=args.model_dir,
        model_version=args.model_version,
        history=args.history,
        http_port=args.listen_port,
        host=args.listen_host,
        collector_url=args.collector_url,
        reload_seconds=args.reload_seconds,
        history_seconds=args.history_seconds,
        namespace=args.namespace,
        log_requests=args.log_requests,
    )


if __name__ == "__main__":
    main()
