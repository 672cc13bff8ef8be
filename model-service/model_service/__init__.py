"""Sample model service: a scikit-learn classifier served over HTTP with interface and model metrics.

Importing the package costs nothing: the heavy modules (training, serving, load generation) are
imported only by their entry points, so infrastructure code can import :mod:`model_service.contract`
without numpy, scikit-learn or prometheus-client installed.
"""
