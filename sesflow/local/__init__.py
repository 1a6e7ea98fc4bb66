"""The embedded local AWS: a moto server that runs the project's own template.yaml."""
