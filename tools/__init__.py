"""Tools that made the shipped files (tokenizer, embedded sample) or check the tree; not part of the package."""
