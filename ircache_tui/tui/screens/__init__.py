"""Modal and full screens: confirmations, the IR detail, the filter, help."""
