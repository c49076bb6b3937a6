"""The demo world: a seeded template corpus, a BPE tokenizer and a staged tiny Llama."""
