"""Python-backend model classes for the ExaTrkX Triton repository.

Imported only inside Triton's stub processes (they need ``triton_python_backend_utils``): the
generated ``<model>/<version>/model.py`` files are one-line shims that import a class from
here, so the served models always run the installed ``sonic_exatrkx`` code, never a copy.
"""
