"""The FreightML image every component, the predictor and the collector run.

``python -m freightml.cluster release`` (``make release``) rewrites :data:`IMAGE` to the
reference it built and pushed, ``<repository>:<version>-<git sha>@sha256:<digest>``, along
with the overlays' and the monitoring chart's image, so a release pins one immutable image
everywhere: the pipelines' ``pipeline.base_image``, ``freightml deploy``'s ``deploy.image``,
the GitOps overlays and the chart. Before the first release it names the version's tag.
"""

REPOSITORY = "ghcr.io/freightml/freightml"
IMAGE = "ghcr.io/freightml/freightml:0.1.0"
