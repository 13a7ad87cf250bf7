"""Redis URLs: shown to humans only with the password masked."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_PARAMS = {"password", "pass", "auth"}


def mask_url(url: str) -> str:
    """Hide the password, in the userinfo (`redis://u:***@h`) or the query (`?password=***`)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            netloc = f"{parts.username or ''}:***@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
        masked = f"{parts.scheme}://{netloc}{parts.path}" if "://" in url else urlunsplit(
            (parts.scheme, netloc, parts.path, "", "")
        )
        return masked + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    except ValueError:
        return "<redis url>"
