"""Import kserve without letting it parse the host program's command line.

``kserve.model_server`` runs ``argparse.parse_known_args()`` on ``sys.argv`` at import
time, with prefix matching: a host CLI's own ``--config x.yaml`` is read as KServe's
``--configure_logging`` and the import dies with a usage error. Every module of FreightML
that imports kserve imports this module first (tests/unit/test_imports.py checks it): the
first import of kserve then sees only the program name, so every ModelServer option keeps
its default unless passed explicitly (as freightml.serving.server does).
"""

from __future__ import annotations

import sys

if "kserve.model_server" not in sys.modules:
    _argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve  # noqa: F401
    finally:
        sys.argv = _argv
