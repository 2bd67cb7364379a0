"""Small server-rendered HTML pages: fulfillment errors, and answers to the form posted without JavaScript.

Every value is escaped; the pages load only the site's own stylesheet (the CSP allows nothing else).
"""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/styles.css">
</head>
<body>
<main class="server-page">
<h1>{title}</h1>
{paragraphs}
</main>
</body>
</html>
"""

START_AGAIN = (
    "Please return to AWS Marketplace, open the product's page, and choose the set-up button again "
    "(for example \u201cSet up your account\u201d) to get a new link."
)


def page(title: str, *paragraphs: str, link: tuple[str, str] | None = None) -> str:
    body = "\n".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    if link:
        href, label = link
        body += f'\n<p><a href="{escape(href, quote=True)}">{escape(label)}</a></p>'
    return _PAGE.format(title=escape(title), paragraphs=body)


def field_errors(title: str, errors: dict[str, str]) -> str:
    items = "\n".join(f"<li>{escape(field)}: {escape(message)}</li>" for field, message in errors.items())
    return _PAGE.format(
        title=escape(title),
        paragraphs=f"<p>Please correct these fields:</p>\n<ul>\n{items}\n</ul>\n"
        '<p><a href="/">Back to the form</a></p>',
    )
