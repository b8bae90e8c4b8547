"""`python -m natlens.capture`: a capture worker (see worker.py), started by executors.PoolRunner.

why: its own entry module, since importing the package natlens (its Python API) already imports
worker.py, and runpy warns when it runs a module that is already imported.
"""

from .worker import serve

if __name__ == "__main__":
    serve()
