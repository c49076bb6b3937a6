"""The `make demo` story: an operator locks the demo model, a customer fine-tunes it
through the SDK against the embedded service, and the gate decides."""
