"""The plugin mechanism: the hook specifications (what a plugin may provide), the spec records a plugin
returns (cheap to build, importing nothing heavy), and the registry that discovers built-in plugins and
installed packages' entry points and resolves names with did-you-mean errors. It may import
:mod:`harness.errors` and :mod:`harness.system`; plugins import it through :mod:`harness.api`.
"""
