"""nanopk's version, in a leaf module: the compiled-model cache key, the results store
and the command line read it without importing the package (which would import them)."""

__version__ = "0.1.0"
