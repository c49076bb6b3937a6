"""Real base models: known ones fetched and verified, GGUF files converted once to a
safetensors folder that transformers, the trainer and the lock code load like any other."""
