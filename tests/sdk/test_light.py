"""The SDK and the customer CLI never import torch, transformers, service or lock_registry."""

from __future__ import annotations

import subprocess
import sys


def test_sdk_imports_no_ml_or_server_code(tmp_path):
    code = ("import sys, sdk, sdk.cli.main, sdk.in_process, sdk.validation; "
            "heavy = {'torch', 'transformers', 'service', 'lock_registry', 'fastapi', 'celery'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.strip()
    assert out == "[]"
