"""Model card and project card, rendered from a training run."""

from freightml.cards.render import CardSet, render_cards, template_dir

__all__ = ["CardSet", "render_cards", "template_dir"]
