"""Modules every layer may import, adapters included: naming rules, message shapes and schemas,
structured logging, the scoring HTTP client. Stdlib only at import (pyarrow loads inside calls)."""
