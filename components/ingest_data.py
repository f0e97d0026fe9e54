from kfp.dsl import Dataset, Output


def ingest_data(config: str, facts: Output[Dataset]):
    """Read the freshest window of facts from the configured source into Parquet.

    Args:
        config: FreightML settings as JSON (freightml.config.Settings).
        facts: the facts of the training window, Parquet; metadata holds the source URI,
            its sha256, the content digest, row and series counts and the date range.
    """
    from freightml.config import settings_from_json
    from freightml.stages.ingest import ingest_data as run

    info = run(settings_from_json(config), facts.path)
    facts.metadata.update(info.to_metadata())
