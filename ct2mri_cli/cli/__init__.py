"""The ``ct2mri`` command line: a thin layer over the importable core."""
