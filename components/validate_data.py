from kfp.dsl import HTML, Artifact, Dataset, Input, Output


def validate_data(
    config: str, facts: Input[Dataset], report: Output[Artifact], report_html: Output[HTML]
):
    """Check the facts against the schema and the data rules; fail on hard errors.

    Args:
        config: FreightML settings as JSON.
        facts: the facts from ingest_data.
        report: the validation report as JSON.
        report_html: the same report as a page for the KFP UI.
    """
    from freightml.config import settings_from_json
    from freightml.stages.validate import validate_data as run

    info = run(settings_from_json(config), facts.path, report.path, report_html.path)
    report.metadata.update(info.to_metadata())
