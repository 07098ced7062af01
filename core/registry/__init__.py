"""The model registry: catalog, promote / roll back, load and compare."""
