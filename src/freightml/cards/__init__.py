"""Model card and project card, rendered from a training run."""

from freightml.cards.context import VersionFacts, card_context
from freightml.cards.render import CardSet, render_cards, template_dir

__all__ = ["CardSet", "VersionFacts", "card_context", "render_cards", "template_dir"]
