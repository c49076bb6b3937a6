"""The evaluation suite: batched generation, the refusal judge, prompt sets and `EvalResult`.

Import from the submodules (`service.evaluation.suite`, `.judge`, `.generation`,
`.prompts`); this package itself stays light so the CLI loads fast.
"""
