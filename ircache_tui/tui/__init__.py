"""The Textual dashboard: a thin layer over the cache library (no Redis or file I/O of its own)."""
