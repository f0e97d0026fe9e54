"""FreightML: MLOps for forecasting rail freight volume between stations."""
__version__ = "0.1.0"
