"""Kept for old imports: the kserve import guard now lives in :mod:`freightml._kserve`."""

import freightml._kserve  # noqa: F401
