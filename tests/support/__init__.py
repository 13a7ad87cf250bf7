

def entry_keys(client, pattern: str = "*") -> list[bytes]:
    """The keys matching `pattern`, less the cache's hit counts (`{prefix}:stats:hits` and
    `{prefix}:{key}:hits`, see cache/hits.py): what a test means by "what is cached"."""
    return sorted(k for k in client.keys(pattern) if not k.endswith(b":hits"))
