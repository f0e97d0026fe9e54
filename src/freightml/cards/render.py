"""Render the model card and the project card (Markdown and HTML) with Jinja2.

The templates live in ``docs/templates``, so the cards can be edited like any other doc;
they are read from the source tree (the image copies them to ``/app/docs/templates``,
beside ``/app/src``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markdown
from jinja2 import Environment, FileSystemLoader, StrictUndefined

CARDS = ("model_card", "project_card")


def template_dir() -> Path:
    """The repository's (or the image's) docs/templates."""
    repo = Path(__file__).resolve().parents[3] / "docs" / "templates"
    if repo.is_dir():
        return repo
    raise FileNotFoundError(
        f"card templates not found in {repo}: run from a clone of the repository or the image"
    )


@dataclass(frozen=True)
class CardSet:
    """Paths of the rendered cards."""

    model_md: Path
    model_html: Path
    project_md: Path
    project_html: Path

    def paths(self) -> list[Path]:
        return [self.model_md, self.model_html, self.project_md, self.project_html]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(template_dir())),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = lambda v, d=4: "n/a" if v is None else f"{float(v):.{d}f}"
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{100 * float(v):.{d}f}%"
    env.filters["thousands"] = lambda v: f"{int(v):,}"
    return env


def to_html(md_text: str, title: str) -> str:
    body = markdown.markdown(md_text, extensions=["tables", "fenced_code"])
    page = _environment().get_template("card.html.j2")
    return page.render(title=title, body=body)


def render_cards(context: dict[str, Any], out_dir: Path) -> CardSet:
    """Write model_card.{md,html} and project_card.{md,html} into ``out_dir``.

    ``context`` is built by :func:`freightml.cards.context.card_context` from the run; a
    missing key is an error (StrictUndefined), never a silently blank section.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    paths: dict[str, Path] = {}
    for card in CARDS:
        text = env.get_template(f"{card}.md.j2").render(**context)
        md_path = out_dir / f"{card}.md"
        md_path.write_text(text)
        html_path = out_dir / f"{card}.html"
        title = (
            f"{context['model']['name']} v{context['model']['version']} - {card.replace('_', ' ')}"
        )
        html_path.write_text(to_html(text, title))
        paths[card] = md_path
        paths[card + "_html"] = html_path
    return CardSet(
        model_md=paths["model_card"],
        model_html=paths["model_card_html"],
        project_md=paths["project_card"],
        project_html=paths["project_card_html"],
    )
