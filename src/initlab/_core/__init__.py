"""Private ground floor: seeds and generators, error wording, tables, files, progress."""
