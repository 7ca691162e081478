"""Security headers on every response: pages, fragments, errors, static files and images.

The pages load script and style only from /static (no inline script, handler or style
attribute), so a strict Content-Security-Policy costs nothing; a response that sets its own
policy (images: a sandbox) keeps it.
"""

from __future__ import annotations

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",  # data: for the favicon in base.html
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app):
    """Add the security headers to every response."""
    app.after_request(add_headers)


def add_headers(response):
    """Set the headers on `response`, keeping a Content-Security-Policy it already has."""
    for name, value in HEADERS.items():
        response.headers[name] = value
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response
