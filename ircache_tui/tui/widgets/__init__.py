"""The dashboard's panes; each only renders what the app hands it."""
