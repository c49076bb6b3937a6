"""The job workflow: validate -> resolve_lock -> train -> relock -> evaluate -> gate -> publish | reject."""
