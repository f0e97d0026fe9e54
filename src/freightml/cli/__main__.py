"""``python -m freightml.cli``."""

from freightml.cli import main

main()
