"""Test factories that ship with the package: synthetic corpus trees with each corpus's real naming
scheme, tiny random models and a small learnable synthetic corpus. Users can test their own code
against ser_hf with them, offline."""
