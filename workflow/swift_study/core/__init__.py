"""The ground floor every stage stands on: the error types users see, atomic writes,
checksum manifests, the run lock, offline switches, device choice and the loader of
user code named in the config (``module:function``).

Imports nothing from the rest of the package.
"""
