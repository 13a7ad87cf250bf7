"""The dashboard's work that belongs to no pane: widgets without display that own their workers.

Each controller runs its workers (`@work(group=…, exit_on_error=False)`), whose only way out is
`post_message`; its own `@on` handlers change its state and post what other parts need, which
the App routes. The App itself runs no worker.

- startup.py: open the cache, turn live updates on where allowed
- health.py: whether Redis answers, for the whole UI (only a failed probe says down)
- totals.py: the status bar's totals, in periodic rounds re-armed after every round, and by
  arithmetic after an operation that says what it removed
- operations.py: what spans tiers and panes: warm, regenerate, prune, diff
"""
