"""The web console: static files in this folder, and the headers every host serves them with.

Local mode's gateway serves the files at ``/console/`` beside the API; in AWS they
are deployed to a bucket behind CloudFront, whose response headers policy is built
from the same ``security_headers``. The console is plain HTML, CSS and JavaScript
modules: nothing is built, and nothing is fetched from another site at run time.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

# The file the console reads first; it names the API the console talks to.
CONFIG_FILE = "config.json"
INDEX_FILE = "index.html"
# What the console is made of, as served: the Python beside it is not part of the site.
SITE_SUFFIXES = (".html", ".css", ".js")


def site_files() -> dict[str, Traversable]:
    """Every file of the site by its path below the console root, e.g. ``js/main.js``."""
    found: dict[str, Traversable] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(SITE_SUFFIXES):
                found[prefix + entry.name] = entry

    walk(resources.files(__name__), "")
    return found


def content_security_policy(*, connect_origins: tuple[str, ...] = ()) -> str:
    """The console's Content-Security-Policy.

    Scripts and styles come only from the site itself, so an injected ``<script>`` or
    inline handler never runs. The page may call only itself and ``connect_origins``. Media may play from any http(s)
    origin: the preview plays the user's own source straight from its host, and media
    elements run no script. Nothing may frame the console, no form or base URL can
    send it elsewhere, and no script may write HTML (Trusted Types with no policy).
    """
    connect = " ".join(dict.fromkeys(("'self'", *connect_origins)))
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob: http: https:",
            f"connect-src {connect}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "object-src 'none'",
            # No script may reach an HTML sink (innerHTML and the like) at all: the page uses none, and
            # the browser then refuses any that a later change would add.
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    )


def security_headers(*, connect_origins: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers every console response carries, on every host.

    ``connect_origins`` are the API's and the artifact store's origins where they are
    not the site's own, as in AWS, where the API is API Gateway's and links are S3's.
    """
    return {
        "Content-Security-Policy": content_security_policy(connect_origins=connect_origins),
        "X-Content-Type-Options": "nosniff",
        # frame-ancestors covers current browsers; X-Frame-Options covers the ones that predate it.
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
