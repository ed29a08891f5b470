"""Entry points of the AzureML pipeline steps and jobs: `python -m ml.steps.<name> --help`.

Each runs with the repository root as working directory (the components' code snapshot), on
AzureML compute or locally. Heavy imports stay inside `main()`.
"""
