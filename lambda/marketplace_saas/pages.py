"""Small server-rendered HTML pages: fulfillment errors, and answers to the form posted without JavaScript.

They look like the listing's landing page: its masthead with the listing's name, the answer in a card, and
the support e-mail in the footer. The accent colour comes from the site's `/brand.css` (written from the
listing's branding beside `config.json`), because the CSP allows only the site's own stylesheets, no inline
style. Every value is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from marketplace_saas.settings import listing_settings

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{head_title}</title>
<link rel="stylesheet" href="/styles.css">
<link rel="stylesheet" href="/brand.css">
</head>
<body>
<header class="masthead">
<div class="wrap">
<p class="eyebrow">Available on AWS Marketplace</p>
{name}</div>
</header>
<main class="wrap server-page" id="main">
<section class="card">
<h1>{title}</h1>
{paragraphs}
</section>
</main>
{footer}</body>
</html>
"""

START_AGAIN = (
    "Please return to AWS Marketplace, open the product's page, and choose the set-up button again "
    "(for example \u201cSet up your account\u201d) to get a new link."
)


@dataclass(frozen=True)
class Brand:
    """What a page shows of the listing: its name and the buyer's support contact (both may be empty)."""

    name: str = ""
    support_email: str = ""

    @classmethod
    def of_listing(cls) -> Brand:
        settings = listing_settings()
        return cls(settings.listing_name, settings.support_email)


def _render(title: str, body: str, brand: Brand | None) -> str:
    brand = brand if brand is not None else Brand.of_listing()
    name = f'<p class="masthead-name">{escape(brand.name)}</p>\n' if brand.name else ""
    footer = ""
    if brand.support_email:
        email = escape(brand.support_email)
        footer = (
            f'<footer class="wrap footer">\n<p>Questions? Write to '
            f'<a href="mailto:{escape(brand.support_email, quote=True)}">{email}</a>.</p>\n</footer>\n'
        )
    head_title = f"{title} \u2013 {brand.name}" if brand.name else title
    return _PAGE.format(
        head_title=escape(head_title), name=name, title=escape(title), paragraphs=body, footer=footer
    )


def page(
    title: str, *paragraphs: str, link: tuple[str, str] | None = None, brand: Brand | None = None
) -> str:
    """A page with `title` as its heading; `brand` is the listing's own (from the settings) unless given."""
    body = "\n".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    if link:
        href, label = link
        body += f'\n<p><a href="{escape(href, quote=True)}">{escape(label)}</a></p>'
    return _render(title, body, brand)


def field_errors(title: str, errors: dict[str, str], brand: Brand | None = None) -> str:
    """The fields to correct, each as `label: what is wrong` (labels as the form shows them)."""
    items = "\n".join(f"<li>{escape(field)}: {escape(message)}</li>" for field, message in errors.items())
    return _render(
        title,
        f'<p>Please correct these fields:</p>\n<ul>\n{items}\n</ul>\n<p><a href="/">Back to the form</a></p>',
        brand,
    )
