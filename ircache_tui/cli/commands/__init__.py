"""One module per subcommand: HELP, DESCRIPTION, add_arguments(parser), run(args, settings)."""

from . import audit, dashboard, diff, flush, get, keys, prune, stats, warm, watch

REGISTRY = {
    "dashboard": dashboard,
    "stats": stats,
    "keys": keys,
    "get": get,
    "warm": warm,
    "flush": flush,
    "prune": prune,
    "watch": watch,
    "diff": diff,
    "audit": audit,
}
